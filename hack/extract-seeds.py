#!/usr/bin/env python3
"""Extracts every manifest of the seed articles into examples/seeds/, unchanged.

Each entry names the article, the line range (1-based, inclusive) of one YAML
document as it stands in the article, and the file it becomes. Blocks that sit
inside a shell heredoc or a Markdown list are de-indented by their common indent,
nothing else. Re-run after editing the table:

    python3 hack/extract-seeds.py ../shared/seeds examples/seeds
"""
import os
import sys
import textwrap

S0 = "000_1be3bceeb5274a7a"
S1 = "001_51459dee51fdb46a"
S2 = "002_85c0937ec41394ee"
S3 = "003_76bb3cb27d73d62f"
S4 = "004_27f72e644f865756"

# (article, first line, last line, output name)
TABLE = [
    (S0, 79, 93, "01-values-karpenter.yaml"),
    (S0, 102, 112, "02-values-karpenter-np.yaml"),
    (S0, 125, 151, "03-deployment-inflate.yaml"),
    (S0, 185, 192, "04-values-keda.yaml"),
    (S0, 217, 230, "05-values-keda-tenants.yaml"),
    (S1, 242, 268, "01-provisioner-default.yaml"),
    (S1, 270, 278, "02-awsnodetemplate-default.yaml"),
    (S2, 41, 85, "01-nodepool-node-spot.yaml"),
    (S2, 122, 130, "02-triggerauthentication-keda-aws-credentials.yaml"),
    (S2, 132, 151, "03-scaledobject-sqs-consumer-scaler.yaml"),
    (S2, 159, 190, "04-deployment-sqs-consumer.yaml"),
    (S3, 160, 166, "01-secret-rabbitmq-scaler-secret.yaml"),
    (S3, 168, 177, "02-triggerauthentication-trigger-auth-rabbitmq-conn.yaml"),
    (S3, 179, 197, "03-scaledobject-virtual-worker-rabbitmq-scaledobject.yaml"),
    (S3, 316, 347, "04-nodepool-arm-nodepool.yaml"),
    (S3, 381, 388, "05-aksnodeclass-default-azurelinux.yaml"),
    (S3, 390, 421, "06-nodepool-arm-nodepool-v2.yaml"),
    (S4, 232, 288, "01-nodepool-default.yaml"),
    (S4, 321, 345, "02-ec2nodeclass-default.yaml"),
    (S4, 378, 399, "03-deployment-nginx.yaml"),
]

# The seed-003 Secret is a shell template: the article builds its one value from
# the variables it sets just above (RABBITMQ_CONNECTION_STRING_BASE64 of
# http://username:password@rabbitmq.pets.svc.cluster.local:15672). The fixture
# holds what the shell would apply; every other byte is the article's.
SUBSTITUTIONS = {
    "01-secret-rabbitmq-scaler-secret.yaml": (
        "${RABBITMQ_CONNECTION_STRING_BASE64}",
        "aHR0cDovL3VzZXJuYW1lOnBhc3N3b3JkQHJhYmJpdG1xLnBldHMuc3ZjLmNsdXN0ZXIubG9jYWw6MTU2NzI=",
    ),
}


def main(seeds: str, out: str) -> None:
    for article, first, last, name in TABLE:
        with open(os.path.join(seeds, article + ".txt"), encoding="utf-8") as f:
            lines = f.read().split("\n")
        block = textwrap.dedent("\n".join(lines[first - 1 : last])).rstrip("\n") + "\n"
        if name in SUBSTITUTIONS:
            old, new = SUBSTITUTIONS[name]
            assert old in block, (name, old)
            block = block.replace(old, new)
        folder = os.path.join(out, article)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.write(block)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
