//! For any sequence of events, the latest audit row of table mode holds exactly the state
//! that fields mode leaves on the user row, and both follow `SignInState::apply`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SubsecRound, TimeZone, Utc};
use proptest::prelude::*;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use trackable::models::{member, user};
use trackable::{TestDb, member_and_user, mysql, postgres, sqlite_memory};
use trackable_core::{Action, ClientInfo, HasSignInState, SignInState, Tracker};

fn clock(start: i64) -> impl Fn() -> DateTime<Utc> + Send + Sync + 'static {
    let tick = Arc::new(AtomicI64::new(0));
    move || {
        let n = tick.fetch_add(1, Ordering::SeqCst);
        Utc.timestamp_opt(start + n * 7, (n as u32 * 1_234_567) % 1_000_000_000)
            .unwrap()
    }
}

fn action() -> impl Strategy<Value = Action> {
    proptest::sample::select(Action::ALL.to_vec())
}

async fn check(events: Vec<(Action, Option<u8>)>) {
    check_on(sqlite_memory().await.unwrap(), events).await;
}

async fn check_on(db: TestDb, events: Vec<(Action, Option<u8>)>) {
    let (table_user, fields_user) = member_and_user(&db.db).await.unwrap();

    let fields = Tracker::new().with_clock(clock(1_600_000_000));
    let table = Tracker::new().with_clock(clock(1_600_000_000));
    let reference = clock(1_600_000_000);
    let mut expected = SignInState::default();

    for (action, ip) in events {
        let client = match ip {
            Some(last) => ClientInfo::from_ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))),
            None => ClientInfo::new(),
        };
        let now = reference().trunc_subsecs(6);
        expected = expected.apply(action, now, client.ip().map(|ip| ip.to_string()).as_deref());

        fields
            .track(&db.db, &fields_user, action, &client)
            .await
            .unwrap();
        table
            .track(&db.db, &table_user, action, &client)
            .await
            .unwrap();

        let user_row = user::Entity::find_by_id(fields_user.id)
            .one(&db.db)
            .await
            .unwrap()
            .unwrap();
        let latest = member::member_events::Entity::find()
            .filter(member::member_events::Column::UserId.eq(table_user.id))
            .order_by_desc(member::member_events::Column::Id)
            .one(&db.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(latest.action, action);
        assert_eq!(
            user_row.sign_in_state(),
            latest.sign_in_state(),
            "after {action}"
        );
        assert_eq!(latest.sign_in_state(), expected, "after {action}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn table_mode_ends_where_fields_mode_does(
        events in proptest::collection::vec((action(), proptest::option::weighted(0.8, any::<u8>())), 0..24)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(check(events));
    }
}

proptest! {
    // Each case creates a database on the server: fewer cases, same property, and the
    // server paths (PostgreSQL's append function, MySQL's transaction) under it.
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn the_same_holds_on_the_servers(
        events in proptest::collection::vec((action(), proptest::option::weighted(0.8, any::<u8>())), 0..16)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            if let Some(db) = postgres(1).await.unwrap() {
                check_on(db, events.clone()).await;
            }
            if let Some(db) = mysql(1).await.unwrap() {
                check_on(db, events).await;
            }
        });
    }
}
