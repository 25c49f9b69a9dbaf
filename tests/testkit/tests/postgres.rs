//! Real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit::{Postgres, pid_alive, tcp_connectable};

#[test]
fn postgres_select_1() {
    let pg = Postgres::start().unwrap();
    let pid = pg.pid();
    assert_eq!(
        pg.url(),
        format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port())
    );
    assert!(tcp_connectable(pg.addr()));
    assert!(pg.is_ready());
    assert_eq!(pg.psql("select 1").unwrap().trim(), "1");
    assert_eq!(pg.psql("select current_user").unwrap().trim(), "postgres");
    let err = pg.psql("select * from no_such_table").unwrap_err();
    assert!(err.to_string().contains("no_such_table"), "{err}");

    drop(pg);
    assert!(!pid_alive(pid), "postmaster {pid} alive after drop");
}
