//! Redis lists and streams, with a password.

use super::*;
use tandem_testkit::services::Redis;

const PASSWORD: &str = "canary-redis-secret";

#[tokio::test]
async fn redis_lists_and_streams_value_activation_push_auth_and_down() {
    let mut server = started(Redis::start(Some(PASSWORD)).await);
    let client =
        ::redis::Client::open(format!("redis://default:{PASSWORD}@{}/0", server.address()))
            .expect("client");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let cmd = |args: &[&str]| {
        let mut c = ::redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c
    };
    let address = server.address();
    let _: i64 = cmd(&["RPUSH", "jobs", "a", "b", "c", "d", "e", "f", "g"])
        .query_async(&mut c)
        .await
        .expect("rpush");

    let list = |activation: &str, pw: &str| {
        params(
            "redis",
            &[
                ("address", address.as_str()),
                ("listName", "jobs"),
                ("listLength", "5"),
                ("activationListLength", activation),
            ],
            &[("password", pw)],
        )
    };
    let s = build(list("0", PASSWORD)).await;
    assert_eq!(value(&*s).await, (7.0, true));
    assert_eq!(
        value(&*build(list("7", PASSWORD)).await).await,
        (7.0, false)
    );

    // Streams: XLEN, pending entries of a group, and the group's lag.
    let _: () = cmd(&["XGROUP", "CREATE", "events", "workers", "$", "MKSTREAM"])
        .query_async(&mut c)
        .await
        .expect("xgroup");
    for i in 0..4 {
        let _: String = cmd(&["XADD", "events", "*", "n", i.to_string().as_str()])
            .query_async(&mut c)
            .await
            .expect("xadd");
    }
    let _: ::redis::Value = cmd(&[
        "XREADGROUP",
        "GROUP",
        "workers",
        "c1",
        "COUNT",
        "3",
        "STREAMS",
        "events",
        ">",
    ])
    .query_async(&mut c)
    .await
    .expect("xreadgroup");
    let stream = |extra: &[(&str, &str)]| {
        let mut md = vec![
            ("address", address.clone()),
            ("stream", "events".to_owned()),
        ];
        md.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let md: Vec<(&str, &str)> = md.iter().map(|(k, v)| (*k, v.as_str())).collect();
        params("redis-streams", &md, &[("password", PASSWORD)])
    };
    assert_eq!(value(&*build(stream(&[])).await).await, (4.0, true));
    assert_eq!(
        value(&*build(stream(&[("consumerGroup", "workers")])).await).await,
        (3.0, true)
    );
    assert_eq!(
        value(&*build(stream(&[("consumerGroup", "workers"), ("lagCount", "1")])).await).await,
        (1.0, true)
    );
    assert_eq!(
        value(
            &*build(stream(&[
                ("consumerGroup", "workers"),
                ("activationLagCount", "3")
            ]))
            .await
        )
        .await,
        (3.0, false)
    );

    // Push: keyspace notification for the list, blocking XREAD for the stream.
    let mut wl = s.watch().expect("list watch");
    let st = build(stream(&[])).await;
    let mut ws = st.watch().expect("stream watch");
    tokio::time::sleep(Duration::from_millis(500)).await; // subscriptions in place
    let _: i64 = cmd(&["RPUSH", "jobs", "h"])
        .query_async(&mut c)
        .await
        .expect("rpush");
    eprintln!(
        "  redis list push wake {:?}",
        next_wake(&mut wl, Duration::from_secs(10)).await
    );
    let _: String = cmd(&["XADD", "events", "*", "n", "9"])
        .query_async(&mut c)
        .await
        .expect("xadd");
    eprintln!(
        "  redis stream push wake {:?}",
        next_wake(&mut ws, Duration::from_secs(15)).await
    );

    // Wrong credential.
    let e = measure(&*build(list("0", "canary-wrong-pw")).await)
        .await
        .unwrap_err();
    assert_clean(
        &e,
        "Unauthorized",
        "redis trigger 0",
        &["canary-wrong-pw", PASSWORD],
    );

    // Down.
    server.stop();
    let e = measure(&*build(list("0", PASSWORD)).await)
        .await
        .unwrap_err();
    assert_clean(&e, "SourceUnreachable", "redis trigger 0", &[PASSWORD]);
}

/// The `connected_clients` line of `INFO clients`.
async fn connected_clients(c: &mut ::redis::aio::MultiplexedConnection) -> usize {
    let info: String = ::redis::cmd("INFO")
        .arg("clients")
        .query_async(c)
        .await
        .expect("info");
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("connected_clients in INFO")
}

/// Scalers that reach the same server with the same credentials send their commands on one
/// multiplexed connection and take their keyspace notifications (push) from one pub/sub
/// connection (KEDA opens a connection per scaler: 3,333 at #15's 10,000 ScaledObjects);
/// another password gets its own; connections the server drops are opened again, and the
/// watches subscribed again.
#[tokio::test]
async fn redis_scalers_of_one_server_share_a_connection() {
    let server = started(Redis::start(Some(PASSWORD)).await);
    let address = server.address();
    let client =
        ::redis::Client::open(format!("redis://default:{PASSWORD}@{address}/0")).expect("client");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let _: i64 = ::redis::cmd("RPUSH")
        .arg("shared")
        .arg(&["a", "b", "c"])
        .query_async(&mut c)
        .await
        .expect("rpush");
    let before = connected_clients(&mut c).await;
    let list = |pw: &str| {
        params(
            "redis",
            &[
                ("address", address.as_str()),
                ("listName", "shared"),
                ("listLength", "5"),
            ],
            &[("password", pw)],
        )
    };
    let mut scalers = Vec::new();
    for _ in 0..50 {
        scalers.push(build(list(PASSWORD)).await);
    }
    let values = futures::future::join_all(scalers.iter().map(|s| value(&**s))).await;
    assert!(values.iter().all(|v| *v == (3.0, true)), "{values:?}");
    assert_eq!(
        connected_clients(&mut c).await,
        before + 1,
        "50 scalers of one server and password: one connection"
    );
    // Push: every watch on the one pub/sub connection, each woken by a change of its list.
    let _: () = ::redis::cmd("CONFIG")
        .arg(&["SET", "notify-keyspace-events", "Kl"])
        .query_async(&mut c)
        .await
        .expect("config set");
    let mut watches: Vec<_> = scalers[..10]
        .iter()
        .map(|s| s.watch().expect("list watch"))
        .collect();
    let rpush = |c: &mut ::redis::aio::MultiplexedConnection| {
        let mut c = c.clone();
        async move {
            let _: i64 = ::redis::cmd("RPUSH")
                .arg("shared")
                .arg("x")
                .query_async(&mut c)
                .await
                .expect("rpush");
        }
    };
    tokio::time::sleep(Duration::from_secs(1)).await; // subscribed
    assert_eq!(
        connected_clients(&mut c).await,
        before + 2,
        "and one pub/sub connection"
    );
    rpush(&mut c).await;
    for w in &mut watches {
        next_wake(w, Duration::from_secs(10)).await;
    }

    // Another password is another connection (refused here), never the shared one.
    let wrong = build(list("canary-wrong-pw")).await;
    let e = measure(&*wrong).await.unwrap_err();
    assert_clean(
        &e,
        "Unauthorized",
        "redis trigger 0",
        &["canary-wrong-pw", PASSWORD],
    );
    assert_eq!(value(&*scalers[0]).await, (4.0, true));

    // The server drops every other client: the next command fails or reconnects, and from
    // then on every scaler measures again, still on one connection; the hub subscribes every
    // watch again on its new connection.
    let _: ::redis::Value = ::redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .query_async(&mut c)
        .await
        .expect("client kill");
    let _: ::redis::Value = ::redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "pubsub"])
        .query_async(&mut c)
        .await
        .expect("client kill pubsub");
    for s in &scalers {
        if measure(&**s).await.is_err() {
            assert_eq!(
                value(&**s).await,
                (4.0, true),
                "after one failure, reconnected"
            );
        }
    }
    let values = futures::future::join_all(scalers.iter().map(|s| value(&**s))).await;
    assert!(values.iter().all(|v| *v == (4.0, true)), "{values:?}");
    tokio::time::sleep(Duration::from_secs(4)).await; // the hub reconnects after 2 s
    assert_eq!(connected_clients(&mut c).await, before + 2);
    rpush(&mut c).await;
    for w in &mut watches {
        next_wake(w, Duration::from_secs(10)).await;
    }
    drop(watches);
    drop(scalers);
}
