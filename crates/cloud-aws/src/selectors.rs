//! EC2NodeClass selector terms as EC2 `Describe*` filters.
//!
//! Upstream semantics (aws `pkg/providers/{subnet,securitygroup,amifamily}`): the terms of one
//! selector are ORed — each term is its own Describe call — and the fields inside a term are
//! ANDed as filters of that call. A tag value `*` matches any value (the `tag-key` filter).
//! Pure: a term in, filter sets out; the resolver runs them.

use std::collections::BTreeMap;

use tandem_api::aws::v1::{AmiSelectorTerm, SecurityGroupSelectorTerm, SubnetSelectorTerm};

/// One EC2 filter: a name and the values any of which may match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// EC2 filter name (`tag:karpenter.sh/discovery`, `subnet-id`, `group-name` …).
    pub name: String,
    /// Accepted values.
    pub values: Vec<String>,
}

impl Filter {
    fn one(name: impl Into<String>, value: impl Into<String>) -> Self {
        Filter {
            name: name.into(),
            values: vec![value.into()],
        }
    }
}

/// The filters of one Describe call: every filter must match.
pub type FilterSet = Vec<Filter>;

fn tag_filters(tags: Option<&BTreeMap<String, String>>) -> impl Iterator<Item = Filter> + '_ {
    tags.into_iter().flatten().map(|(k, v)| {
        if v == "*" {
            Filter::one("tag-key", k.clone())
        } else {
            Filter::one(format!("tag:{k}"), v.clone())
        }
    })
}

/// `DescribeSubnets` filter sets for the terms, one per term.
pub fn subnet_filters(terms: &[SubnetSelectorTerm]) -> Vec<FilterSet> {
    terms
        .iter()
        .map(|t| {
            let mut f: FilterSet =
                t.id.iter()
                    .map(|id| Filter::one("subnet-id", id.clone()))
                    .collect();
            f.extend(tag_filters(t.tags.as_ref()));
            f
        })
        .collect()
}

/// `DescribeSecurityGroups` filter sets for the terms, one per term.
pub fn security_group_filters(terms: &[SecurityGroupSelectorTerm]) -> Vec<FilterSet> {
    terms
        .iter()
        .map(|t| {
            let mut f: FilterSet = Vec::new();
            if let Some(id) = &t.id {
                f.push(Filter::one("group-id", id.clone()));
            }
            if let Some(name) = &t.name {
                f.push(Filter::one("group-name", name.clone()));
            }
            f.extend(tag_filters(t.tags.as_ref()));
            f
        })
        .collect()
}

/// How one AMI selector term is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmiQuery {
    /// `alias: family@version`: the SSM parameters that name the image per architecture.
    Alias(crate::alias::Alias),
    /// `ssmParameter`: one parameter whose value is an image id.
    SsmParameter(String),
    /// Everything else: a `DescribeImages` call with these filters and owners.
    Describe {
        /// Filters (`image-id`, `name`, tags).
        filters: FilterSet,
        /// Owners (`self`, `amazon`, an account id); empty means any.
        owners: Vec<String>,
    },
}

/// The lookups for the AMI terms, one per term; an alias that does not parse is an error
/// naming the term's field.
pub fn ami_queries(terms: &[AmiSelectorTerm]) -> Result<Vec<AmiQuery>, crate::alias::AliasError> {
    terms
        .iter()
        .map(|t| {
            if let Some(alias) = &t.alias {
                return Ok(AmiQuery::Alias(alias.parse()?));
            }
            if let Some(p) = &t.ssm_parameter {
                return Ok(AmiQuery::SsmParameter(p.clone()));
            }
            let mut filters: FilterSet = Vec::new();
            if let Some(id) = &t.id {
                filters.push(Filter::one("image-id", id.clone()));
            }
            if let Some(name) = &t.name {
                filters.push(Filter::one("name", name.clone()));
            }
            filters.extend(tag_filters(t.tags.as_ref()));
            // Upstream: a name without an owner means images owned by this account or Amazon.
            let owners = match (&t.owner, &t.name, &t.id) {
                (Some(o), _, _) => vec![o.clone()],
                (None, Some(_), None) => vec!["self".to_owned(), "amazon".to_owned()],
                _ => Vec::new(),
            };
            Ok(AmiQuery::Describe { filters, owners })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn terms_are_ored_and_fields_anded() {
        let terms = vec![
            SubnetSelectorTerm {
                tags: tags(&[("karpenter.sh/discovery", "demo"), ("tier", "*")]),
                id: None,
            },
            SubnetSelectorTerm {
                tags: None,
                id: Some("subnet-123".into()),
            },
        ];
        let f = subnet_filters(&terms);
        assert_eq!(f.len(), 2);
        assert_eq!(
            f[0],
            vec![
                Filter::one("tag:karpenter.sh/discovery", "demo"),
                Filter::one("tag-key", "tier"),
            ]
        );
        assert_eq!(f[1], vec![Filter::one("subnet-id", "subnet-123")]);
    }

    #[test]
    fn security_groups_by_name_and_id() {
        let terms = vec![SecurityGroupSelectorTerm {
            tags: None,
            id: None,
            name: Some("eks-cluster-sg".into()),
        }];
        assert_eq!(
            security_group_filters(&terms),
            vec![vec![Filter::one("group-name", "eks-cluster-sg")]]
        );
    }

    #[test]
    fn ami_terms_become_alias_ssm_or_describe() {
        let term = |alias: Option<&str>, name: Option<&str>, owner: Option<&str>| AmiSelectorTerm {
            alias: alias.map(Into::into),
            tags: None,
            id: None,
            name: name.map(Into::into),
            owner: owner.map(Into::into),
            ssm_parameter: None,
        };
        let q = ami_queries(&[
            term(Some("al2023@latest"), None, None),
            term(None, Some("my-ami-*"), None),
            term(None, Some("my-ami-*"), Some("123456789012")),
        ])
        .unwrap();
        assert!(matches!(&q[0], AmiQuery::Alias(a) if a.family == "al2023"));
        assert_eq!(
            q[1],
            AmiQuery::Describe {
                filters: vec![Filter::one("name", "my-ami-*")],
                owners: vec!["self".into(), "amazon".into()],
            }
        );
        assert!(matches!(&q[2], AmiQuery::Describe { owners, .. } if owners == &["123456789012"]));
        assert!(ami_queries(&[term(Some("nope"), None, None)]).is_err());
    }
}
