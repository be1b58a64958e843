//! The store contract: behaviour every backend must show, as test cases
//! that take a fresh, empty store. `contract_tests!` instantiates them all for
//! one backend.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;

use super::{RotateOutcome, Store, StoreError, UniqueField};
use crate::account::{
    ApiKey, ApiKeyId, AuditEvent, CodePurpose, OneTimeCode, ProjectId, RefreshRecord, Role, Rotation, Session,
    SessionId, User, UserId,
};
use crate::clock::{Clock, SystemClock, Timestamp};

const T0: Timestamp = Timestamp(1_800_000_000_000);
const DAY: Duration = Duration::from_secs(86_400);

pub fn user(email: &str, username: Option<&str>) -> User {
    let hash = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_owned();
    User {
        username: username.map(str::to_owned),
        ..User::fresh(ProjectId::default_project(), email.to_owned(), "Contract".into(), Some(hash), T0)
    }
}

fn session_for(user: &User, expires_at: Timestamp) -> (Session, RefreshRecord) {
    let session = Session::begin(user, Some("contract".into()), Some("127.0.0.1".into()), T0, expires_at);
    let refresh = refresh_for(&session, T0, expires_at);
    (session, refresh)
}

fn refresh_for(session: &Session, at: Timestamp, expires_at: Timestamp) -> RefreshRecord {
    let digest = *blake3::hash(SessionId::generate().to_string().as_bytes()).as_bytes();
    RefreshRecord::live(session, digest, at, expires_at)
}

pub async fn first_user_of_default_project_is_superadmin(store: Arc<dyn Store>) {
    let project = ProjectId::default_project();
    assert!(!store.has_users(&project).await.unwrap());
    let first = store.create_user(user("a@x.io", None)).await.unwrap();
    assert_eq!(first.role, Role::Superadmin);
    let second = store.create_user(user("b@x.io", None)).await.unwrap();
    assert_eq!(second.role, Role::User);
    assert!(store.has_users(&project).await.unwrap());
    assert!(!store.has_users(&ProjectId("other".into())).await.unwrap());
}

pub async fn email_and_username_are_unique_per_project(store: Arc<dyn Store>) {
    store.create_user(user("a@x.io", Some("ada"))).await.unwrap();
    let email = store.create_user(user("a@x.io", None)).await.unwrap_err();
    assert!(matches!(email, StoreError::AlreadyExists(UniqueField::Email)), "{email:?}");
    let name = store.create_user(user("b@x.io", Some("ada"))).await.unwrap_err();
    assert!(matches!(name, StoreError::AlreadyExists(UniqueField::Username)), "{name:?}");
    // The refused writes left nothing behind: the email of the second is still free.
    store.create_user(user("b@x.io", Some("bob"))).await.unwrap();
    // Another project has its own namespace.
    let mut other = user("a@x.io", Some("ada"));
    other.project = ProjectId("other".into());
    store.create_user(other).await.unwrap();
}

pub async fn racing_creates_of_one_email_make_one_user(store: Arc<dyn Store>) {
    let attempts = (0..32).map(|_| {
        let store = Arc::clone(&store);
        async move { store.create_user(user("race@x.io", None)).await }
    });
    let results = join_all(attempts).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|e| matches!(e, StoreError::AlreadyExists(_))));
}

pub async fn users_are_found_by_id_email_and_username(store: Arc<dyn Store>) {
    let created = store.create_user(user("a@x.io", Some("ada"))).await.unwrap();
    let project = ProjectId::default_project();
    assert_eq!(store.find_user(created.id).await.unwrap().unwrap(), created);
    assert_eq!(store.find_user_by_email(&project, "a@x.io").await.unwrap().unwrap().id, created.id);
    assert_eq!(store.find_user_by_username(&project, "ada").await.unwrap().unwrap().id, created.id);
    assert!(store.find_user_by_email(&project, "nobody@x.io").await.unwrap().is_none());
    assert!(store.find_user(UserId::generate()).await.unwrap().is_none());
}

pub async fn update_moves_the_username_claim(store: Arc<dyn Store>) {
    let project = ProjectId::default_project();
    let mut ada = store.create_user(user("a@x.io", Some("ada"))).await.unwrap();
    store.create_user(user("b@x.io", Some("bob"))).await.unwrap();
    ada.username = Some("bob".into());
    assert!(matches!(store.update_user(ada.clone()).await, Err(StoreError::AlreadyExists(UniqueField::Username))));
    ada.username = Some("lovelace".into());
    ada.name = "Ada Lovelace".into();
    store.update_user(ada.clone()).await.unwrap();
    assert!(store.find_user_by_username(&project, "ada").await.unwrap().is_none());
    assert_eq!(store.find_user_by_username(&project, "lovelace").await.unwrap().unwrap().name, "Ada Lovelace");
    // The released name can be taken by someone else.
    store.create_user(user("c@x.io", Some("ada"))).await.unwrap();
    let missing = user("z@x.io", None);
    assert!(matches!(store.update_user(missing).await, Err(StoreError::NotFound)));
}

pub async fn sessions_are_listed_and_deleted_with_their_tokens(store: Arc<dyn Store>) {
    let ada = store.create_user(user("a@x.io", None)).await.unwrap();
    let (s1, r1) = session_for(&ada, T0.plus(DAY));
    let (s2, r2) = session_for(&ada, T0.plus(DAY));
    let (old, r_old) = session_for(&ada, T0.plus(Duration::from_secs(1)));
    for (s, r) in [(s1.clone(), r1.clone()), (s2.clone(), r2.clone()), (old, r_old)] {
        store.create_session(s, r).await.unwrap();
    }
    let listed = store.list_sessions(ada.id, T0.plus(Duration::from_secs(2))).await.unwrap();
    assert_eq!(listed.iter().map(|s| s.id).collect::<Vec<_>>().len(), 2, "expired session listed");
    assert_eq!(store.find_session(s1.id).await.unwrap().unwrap(), s1);
    assert_eq!(store.find_refresh_token(&r1.digest).await.unwrap().unwrap(), r1);
    assert!(store.delete_session(s1.id).await.unwrap());
    assert!(!store.delete_session(s1.id).await.unwrap());
    assert!(store.find_session(s1.id).await.unwrap().is_none());
    assert!(store.find_refresh_token(&r1.digest).await.unwrap().is_none());
    assert!(store.find_refresh_token(&r2.digest).await.unwrap().is_some());
}

pub async fn deleting_user_sessions_keeps_the_named_one(store: Arc<dyn Store>) {
    let ada = store.create_user(user("a@x.io", None)).await.unwrap();
    let bob = store.create_user(user("b@x.io", None)).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (s, r) = session_for(&ada, T0.plus(DAY));
        ids.push(s.id);
        store.create_session(s, r).await.unwrap();
    }
    let (bobs, bob_refresh) = session_for(&bob, T0.plus(DAY));
    store.create_session(bobs.clone(), bob_refresh).await.unwrap();
    let mut deleted = store.delete_user_sessions(ada.id, Some(ids[0])).await.unwrap();
    deleted.sort();
    let mut expected = ids[1..].to_vec();
    expected.sort();
    assert_eq!(deleted, expected);
    assert_eq!(store.list_sessions(ada.id, T0).await.unwrap().len(), 1);
    assert!(store.find_session(bobs.id).await.unwrap().is_some());
}

pub async fn a_refresh_token_rotates_once(store: Arc<dyn Store>) {
    let ada = store.create_user(user("a@x.io", None)).await.unwrap();
    let (session, first) = session_for(&ada, T0.plus(DAY));
    store.create_session(session.clone(), first.clone()).await.unwrap();
    let at = T0.plus(Duration::from_secs(5));
    let rotation = Rotation { at, sealed_successor: vec![1, 2, 3] };
    let successor = refresh_for(&session, at, at.plus(DAY));
    let touch = (at, at.plus(DAY));
    let outcome = store.rotate_refresh_token(&first.digest, rotation.clone(), successor.clone(), touch).await.unwrap();
    assert_eq!(outcome, RotateOutcome::Rotated);
    // A second rotation, even with another successor, is refused and told the first.
    let rival = refresh_for(&session, at, at.plus(DAY));
    let again = store
        .rotate_refresh_token(&first.digest, Rotation { at, sealed_successor: vec![9] }, rival.clone(), touch)
        .await
        .unwrap();
    assert_eq!(again, RotateOutcome::AlreadyRotated(rotation));
    assert!(store.find_refresh_token(&rival.digest).await.unwrap().is_none());
    assert_eq!(store.find_refresh_token(&successor.digest).await.unwrap().unwrap(), successor);
    let touched = store.find_session(session.id).await.unwrap().unwrap();
    assert_eq!((touched.last_seen_at, touched.expires_at), touch);
    let unknown = store.rotate_refresh_token(&[7; 32], Rotation { at, sealed_successor: vec![] }, rival, touch).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)));
}

pub async fn racing_rotations_have_one_winner(store: Arc<dyn Store>) {
    let ada = store.create_user(user("a@x.io", None)).await.unwrap();
    let (session, first) = session_for(&ada, T0.plus(DAY));
    store.create_session(session.clone(), first.clone()).await.unwrap();
    let attempts = (0..16u8).map(|i| {
        let (store, session) = (Arc::clone(&store), session.clone());
        async move {
            let rotation = Rotation { at: T0, sealed_successor: vec![i] };
            let successor = refresh_for(&session, T0, T0.plus(DAY));
            store.rotate_refresh_token(&first.digest, rotation, successor, (T0, T0.plus(DAY))).await.unwrap()
        }
    });
    let outcomes = join_all(attempts).await;
    assert_eq!(outcomes.iter().filter(|o| **o == RotateOutcome::Rotated).count(), 1);
}

/// For backends that sweep (the embedded store); TTL backends expire rows themselves.
pub async fn sweep_removes_only_what_expired(store: Arc<dyn Store>) {
    let ada = store.create_user(user("a@x.io", None)).await.unwrap();
    let (live, live_refresh) = session_for(&ada, T0.plus(DAY));
    let (dead, dead_refresh) = session_for(&ada, T0.plus(Duration::from_secs(1)));
    store.create_session(live.clone(), live_refresh.clone()).await.unwrap();
    store.create_session(dead.clone(), dead_refresh.clone()).await.unwrap();
    let removed = store.sweep_expired(T0.plus(Duration::from_secs(2))).await.unwrap();
    assert!(removed >= 1);
    assert!(store.find_session(dead.id).await.unwrap().is_none());
    assert!(store.find_refresh_token(&dead_refresh.digest).await.unwrap().is_none());
    assert!(store.find_session(live.id).await.unwrap().is_some());
    assert!(store.find_refresh_token(&live_refresh.digest).await.unwrap().is_some());
    store.flush().await.unwrap();
    store.ping().await.unwrap();
}

fn api_key(owner: &User, created_at: Timestamp) -> ApiKey {
    let id = ApiKeyId::generate();
    ApiKey {
        id,
        project: owner.project.clone(),
        user_id: owner.id,
        name: "ci".into(),
        prefix: "pk_live_abcd".into(),
        digest: *blake3::hash(id.to_string().as_bytes()).as_bytes(),
        scopes: vec!["introspect".into(), "read".into()],
        created_at,
        expires_at: Some(created_at.plus(DAY)),
        last_used_at: None,
    }
}

pub async fn api_keys_are_found_listed_touched_and_deleted(store: Arc<dyn Store>) {
    let ada = store.create_user(user("a@x.io", None)).await.unwrap();
    let bob = store.create_user(user("b@x.io", None)).await.unwrap();
    let (first, second) = (api_key(&ada, T0), api_key(&ada, T0.plus(Duration::from_secs(1))));
    let bobs = api_key(&bob, T0);
    for key in [&first, &second, &bobs] {
        store.create_api_key(key.clone()).await.unwrap();
    }
    assert_eq!(store.find_api_key(&first.digest).await.unwrap().unwrap(), first);
    assert!(store.find_api_key(&[0; 32]).await.unwrap().is_none());
    let listed: Vec<_> = store.list_api_keys(ada.id).await.unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(listed, vec![first.id, second.id]);
    // Touches only move forward; unknown keys are skipped.
    let later = T0.plus(Duration::from_secs(60));
    store.touch_api_keys(vec![(first.id, later), (ApiKeyId::generate(), later)]).await.unwrap();
    store.touch_api_keys(vec![(first.id, T0)]).await.unwrap();
    assert_eq!(store.find_api_key(&first.digest).await.unwrap().unwrap().last_used_at, Some(later));
    // Only the owner deletes a key.
    assert!(store.delete_api_key(bob.id, first.id).await.unwrap().is_none());
    assert_eq!(store.delete_api_key(ada.id, first.id).await.unwrap().unwrap().id, first.id);
    assert!(store.delete_api_key(ada.id, first.id).await.unwrap().is_none());
    assert!(store.find_api_key(&first.digest).await.unwrap().is_none());
    assert_eq!(store.list_api_keys(ada.id).await.unwrap().len(), 1);
    assert_eq!(store.list_api_keys(bob.id).await.unwrap().len(), 1);
}

pub async fn a_claim_is_won_once(store: Arc<dyn Store>) {
    let until = SystemClock.now().plus(Duration::from_secs(120));
    let key = *blake3::hash(b"totp step").as_bytes();
    let racers = join_all((0..8).map(|_| store.claim_once(key, until))).await;
    assert_eq!(racers.into_iter().filter(|won| *won.as_ref().unwrap()).count(), 1);
    assert!(!store.claim_once(key, until).await.unwrap());
    assert!(store.claim_once(*blake3::hash(b"another").as_bytes(), until).await.unwrap());
}

pub fn code(purpose: CodePurpose, subject: &str, digest: [u8; 32], created_at: Timestamp) -> OneTimeCode {
    OneTimeCode {
        project: ProjectId::default_project(),
        purpose,
        subject: subject.into(),
        digest,
        attempts: 0,
        created_at,
        expires_at: created_at.plus(Duration::from_secs(600)),
    }
}

pub async fn codes_are_replaced_found_and_deleted(store: Arc<dyn Store>) {
    let now = SystemClock.now();
    let project = ProjectId::default_project();
    let login = code(CodePurpose::Login, "a@x.io", [1; 32], now);
    store.put_code(login.clone()).await.unwrap();
    store.put_code(code(CodePurpose::Reset, "a@x.io", [2; 32], now)).await.unwrap();
    assert_eq!(store.find_code(&project, CodePurpose::Login, "a@x.io").await.unwrap().unwrap(), login);
    assert!(store.find_code(&project, CodePurpose::Verify, "a@x.io").await.unwrap().is_none());
    assert!(store.find_code(&ProjectId("other".into()), CodePurpose::Login, "a@x.io").await.unwrap().is_none());
    // A new code (or a counted wrong try) replaces the record.
    let tried = OneTimeCode { attempts: 3, digest: [9; 32], ..login };
    store.put_code(tried.clone()).await.unwrap();
    assert_eq!(store.find_code(&project, CodePurpose::Login, "a@x.io").await.unwrap().unwrap(), tried);
    store.delete_code(&project, CodePurpose::Login, "a@x.io").await.unwrap();
    assert!(store.find_code(&project, CodePurpose::Login, "a@x.io").await.unwrap().is_none());
    assert_eq!(store.find_code(&project, CodePurpose::Reset, "a@x.io").await.unwrap().unwrap().digest, [2; 32]);
}

pub async fn audit_events_list_newest_first_per_project(store: Arc<dyn Store>) {
    let now = SystemClock.now();
    let event = |project: &str, kind: &str, seconds: u64| AuditEvent {
        id: uuid::Uuid::now_v7(),
        at: now.plus(Duration::from_secs(seconds)),
        project: ProjectId(project.into()),
        user_id: Some(UserId::generate()),
        kind: kind.into(),
        ip: Some("127.0.0.1".into()),
        user_agent: None,
        detail: None,
        count: 1,
        keep_until: now.plus(Duration::from_secs(86_400)),
    };
    for (i, kind) in ["first", "second", "third"].iter().enumerate() {
        store.append_audit(event("default", kind, i as u64)).await.unwrap();
    }
    store.append_audit(event("other", "elsewhere", 0)).await.unwrap();
    let kinds = |events: Vec<AuditEvent>| events.into_iter().map(|e| e.kind).collect::<Vec<_>>();
    let project = ProjectId::default_project();
    assert_eq!(kinds(store.list_audit(&project, 10).await.unwrap()), ["third", "second", "first"]);
    assert_eq!(kinds(store.list_audit(&project, 2).await.unwrap()), ["third", "second"]);
    assert_eq!(kinds(store.list_audit(&ProjectId("other".into()), 10).await.unwrap()), ["elsewhere"]);
}

pub async fn audit_events_are_upserted_by_id_and_forgotten_after_keep_until(store: Arc<dyn Store>) {
    let now = SystemClock.now();
    let project = ProjectId("retention".into());
    let event = |kind: &str, keep: Duration| AuditEvent {
        id: uuid::Uuid::now_v7(),
        at: now,
        project: project.clone(),
        user_id: None,
        kind: kind.into(),
        ip: None,
        user_agent: None,
        detail: None,
        count: 1,
        keep_until: now.plus(keep),
    };
    let counted = event("code_failed", Duration::from_secs(86_400));
    store.append_audit(counted.clone()).await.unwrap();
    store.append_audit(AuditEvent { count: 7, ..counted.clone() }).await.unwrap();
    let short = event("short_lived", Duration::from_secs(1));
    store.append_audit(short).await.unwrap();
    let listed = store.list_audit(&project, 10).await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed.iter().find(|e| e.id == counted.id).unwrap().count, 7, "one row per id, the last write kept");
    // Past its keep_until (a TTL on CQL, the sweep on the embedded store), the short-lived one is gone.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    store.sweep_expired(now.plus(Duration::from_secs(3))).await.unwrap();
    let kinds: Vec<String> = store.list_audit(&project, 10).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["code_failed"]);
}

pub async fn projects_are_created_once_and_changed_by_version(store: Arc<dyn Store>) {
    use crate::projects::Project;
    let mobile = Project::new(ProjectId("mobile_app".into()), "Mobile App".into(), "production".into(), None, T0);
    assert!(store.create_project(mobile.clone()).await.unwrap());
    let squatter = Project { name: "Other".into(), ..mobile.clone() };
    assert!(!store.create_project(squatter).await.unwrap(), "an id is created once");
    assert_eq!(store.find_project(&mobile.id).await.unwrap().unwrap(), mobile);
    assert!(store.find_project(&ProjectId("web".into())).await.unwrap().is_none());
    let web = Project::new(ProjectId("web".into()), "Web".into(), "staging".into(), Some("the site".into()), T0);
    assert!(store.create_project(web.clone()).await.unwrap());
    let mut listed = store.list_projects().await.unwrap();
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(listed, [mobile.clone(), web]);

    // A change names the version it read: of racing changes from one read, one wins.
    let racers = join_all((0..6).map(|i| {
        let changed = Project { name: format!("Mobile {i}"), version: 2, ..mobile.clone() };
        store.replace_project(changed, 1)
    }))
    .await;
    assert_eq!(racers.iter().filter(|r| r.is_ok()).count(), 1, "{racers:?}");
    assert!(racers.iter().all(|r| matches!(r, Ok(()) | Err(StoreError::Conflict))), "{racers:?}");
    let stored = store.find_project(&mobile.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert!(stored.name.starts_with("Mobile "));
    let gone = Project { id: ProjectId("gone".into()), ..stored };
    assert!(matches!(store.replace_project(gone, 2).await, Err(StoreError::NotFound)));
}

pub async fn users_are_listed_by_project_in_pages_and_deleted(store: Arc<dyn Store>) {
    let mut made = Vec::new();
    for i in 0..23 {
        made.push(store.create_user(user(&format!("u{i}@x.io"), Some(&format!("user{i}")))).await.unwrap().id);
    }
    let elsewhere = User { project: ProjectId("other".into()), ..user("u0@x.io", None) };
    store.create_user(elsewhere).await.unwrap();
    made.sort();
    let project = ProjectId::default_project();
    let (mut seen, mut after) = (Vec::new(), None);
    loop {
        let page = store.list_users(&project, after, 10).await.unwrap();
        assert!(page.len() <= 10);
        seen.extend(page.iter().map(|u| u.id));
        match page.last() {
            Some(last) if page.len() == 10 => after = Some(last.id),
            _ => break,
        }
    }
    assert_eq!(seen, made, "every user once, in id order, none of another project");
    assert_eq!(store.list_users(&ProjectId("other".into()), None, 10).await.unwrap().len(), 1);
    assert!(store.list_users(&ProjectId("none".into()), None, 10).await.unwrap().is_empty());

    let gone = made[5];
    let record = store.find_user(gone).await.unwrap().unwrap();
    assert!(store.delete_user(gone).await.unwrap());
    assert!(!store.delete_user(gone).await.unwrap());
    assert!(store.find_user(gone).await.unwrap().is_none());
    let listed: Vec<UserId> = store.list_users(&project, None, 100).await.unwrap().iter().map(|u| u.id).collect();
    assert_eq!(listed.len(), 22);
    assert!(!listed.contains(&gone));
    assert!(store.find_user_by_email(&project, &record.email).await.unwrap().is_none());
    // Its address and username are free again.
    let again = user(&record.email, record.username.as_deref());
    assert_eq!(store.create_user(again).await.unwrap().email, record.email);
}

pub async fn audit_events_page_newest_first_by_cursor_and_user(store: Arc<dyn Store>) {
    use super::AuditQuery;
    let now = SystemClock.now();
    let project = ProjectId("paged".into());
    let (ada, bob) = (UserId::generate(), UserId::generate());
    let mut made = Vec::new();
    for i in 0..25u64 {
        let event = AuditEvent {
            id: uuid::Uuid::now_v7(),
            // Two days' worth, oldest first, so pages cross partitions.
            at: Timestamp(now.0 - 2 * 86_400_000 + i64::try_from(i).unwrap() * 7_000_000),
            project: project.clone(),
            user_id: Some(if i % 3 == 0 { bob } else { ada }),
            kind: "login".into(),
            ip: None,
            user_agent: None,
            detail: Some(format!("n={i}")),
            count: 1,
            keep_until: now.plus(DAY),
        };
        store.append_audit(event.clone()).await.unwrap();
        made.push(event);
    }
    let elsewhere = AuditEvent { id: uuid::Uuid::now_v7(), project: ProjectId("other".into()), ..made[0].clone() };
    store.append_audit(elsewhere).await.unwrap();
    let page = |user: Option<UserId>, before: Option<(Timestamp, uuid::Uuid)>, limit: usize| AuditQuery {
        project: project.clone(),
        user,
        before,
        since: Timestamp(0),
        limit,
    };
    // Everything, ten at a time, newest first, each once.
    let (mut seen, mut before) = (Vec::new(), None);
    loop {
        let events = store.list_audit_page(page(None, before, 10)).await.unwrap();
        seen.extend(events.iter().map(|e| e.detail.clone().unwrap()));
        match events.last() {
            Some(last) if events.len() == 10 => before = Some((last.at, last.id)),
            _ => break,
        }
    }
    let newest_first: Vec<String> = made.iter().rev().map(|e| e.detail.clone().unwrap()).collect();
    assert_eq!(seen, newest_first);
    // One user's, likewise.
    let bobs: Vec<String> =
        made.iter().rev().filter(|e| e.user_id == Some(bob)).map(|e| e.detail.clone().unwrap()).collect();
    let first = store.list_audit_page(page(Some(bob), None, 5)).await.unwrap();
    let last = first.last().unwrap();
    let rest = store.list_audit_page(page(Some(bob), Some((last.at, last.id)), 50)).await.unwrap();
    let listed: Vec<String> = first.iter().chain(&rest).map(|e| e.detail.clone().unwrap()).collect();
    assert_eq!(listed, bobs);
    // Nothing older than `since`.
    let since = made[20].at;
    let recent = store.list_audit_page(AuditQuery { since, ..page(None, None, 50) }).await.unwrap();
    assert_eq!(recent.len(), 5);
}

pub async fn passkeys_are_unique_by_credential_listed_changed_and_deleted(store: Arc<dyn Store>) {
    use crate::account::{PasskeyId, PasskeyRecord};
    let (ada, bob) = (UserId::generate(), UserId::generate());
    let passkey = |user: UserId, credential: &[u8], at: i64| PasskeyRecord {
        id: PasskeyId::generate(),
        project: ProjectId::default_project(),
        user_id: user,
        credential_id: credential.to_vec(),
        name: "laptop".into(),
        credential: b"{\"counter\":0}".to_vec(),
        created_at: Timestamp(T0.0 + at),
        last_used_at: None,
    };
    let first = passkey(ada, b"cred-1", 0);
    assert!(store.create_passkey(first.clone()).await.unwrap());
    let second = passkey(ada, b"cred-2", 1000);
    assert!(store.create_passkey(second.clone()).await.unwrap());
    // A credential id is one account's, whoever registers it again.
    assert!(!store.create_passkey(passkey(bob, b"cred-1", 2000)).await.unwrap());
    assert!(store.list_passkeys(bob).await.unwrap().is_empty());
    assert_eq!(store.find_passkey(b"cred-1").await.unwrap().unwrap(), first);
    assert!(store.find_passkey(b"nope").await.unwrap().is_none());
    assert_eq!(store.list_passkeys(ada).await.unwrap(), [first.clone(), second.clone()]);

    let used = PasskeyRecord { credential: b"{\"counter\":7}".to_vec(), last_used_at: Some(T0), ..first.clone() };
    store.update_passkey(used.clone()).await.unwrap();
    assert_eq!(store.find_passkey(b"cred-1").await.unwrap().unwrap(), used);
    let not_bobs = PasskeyRecord { user_id: bob, ..used.clone() };
    assert!(matches!(store.update_passkey(not_bobs).await, Err(StoreError::NotFound)));

    assert!(store.delete_passkey(bob, first.id).await.unwrap().is_none(), "not bob's");
    assert_eq!(store.delete_passkey(ada, first.id).await.unwrap().unwrap().id, first.id);
    assert!(store.find_passkey(b"cred-1").await.unwrap().is_none());
    assert_eq!(store.list_passkeys(ada).await.unwrap(), [second]);
    assert!(matches!(store.update_passkey(used).await, Err(StoreError::NotFound)));
    // A deleted credential id can be registered again.
    assert!(store.create_passkey(passkey(bob, b"cred-1", 3000)).await.unwrap());
}

pub async fn a_ceremony_state_is_taken_once_and_not_after_it_expires(store: Arc<dyn Store>) {
    let now = SystemClock.now();
    let id = uuid::Uuid::now_v7();
    store.put_challenge(id, b"state".to_vec(), now.plus(Duration::from_secs(300))).await.unwrap();
    let racers = join_all((0..6).map(|_| store.take_challenge(id, now))).await;
    let taken: Vec<_> = racers.into_iter().filter_map(Result::unwrap).collect();
    assert_eq!(taken, [b"state".to_vec()], "taken once");
    assert!(store.take_challenge(uuid::Uuid::now_v7(), now).await.unwrap().is_none());
    let stale = uuid::Uuid::now_v7();
    store.put_challenge(stale, b"old".to_vec(), now.plus(Duration::from_secs(2))).await.unwrap();
    assert!(store.take_challenge(stale, now.plus(Duration::from_secs(3))).await.unwrap().is_none(), "expired");
}

pub async fn identities_are_linked_once_found_listed_and_unlinked(store: Arc<dyn Store>) {
    use crate::account::Identity;
    let (ada, bob) = (UserId::generate(), UserId::generate());
    let project = ProjectId::default_project();
    let identity = |user: UserId, provider: &str, subject: &str, at: i64| Identity {
        project: project.clone(),
        provider: provider.into(),
        subject: subject.into(),
        user_id: user,
        email: Some("ada@example.com".into()),
        created_at: Timestamp(T0.0 + at),
    };
    let google = identity(ada, "google", "1234", 0);
    // Racing links of one subject: one wins.
    let racers = join_all((0..5).map(|_| store.create_identity(google.clone()))).await;
    assert_eq!(racers.into_iter().filter(|won| *won.as_ref().unwrap()).count(), 1);
    assert!(!store.create_identity(identity(bob, "google", "1234", 1)).await.unwrap(), "one account per subject");
    // The same subject at another provider, or in another project, is another identity.
    let okta = identity(ada, "okta", "1234", 1000);
    assert!(store.create_identity(okta.clone()).await.unwrap());
    let elsewhere = Identity { project: ProjectId("app".into()), ..identity(bob, "google", "1234", 2000) };
    assert!(store.create_identity(elsewhere.clone()).await.unwrap());
    // Parts never run into each other.
    assert!(store.create_identity(identity(bob, "goo", "gle1234", 3000)).await.unwrap());

    assert_eq!(store.find_identity(&project, "google", "1234").await.unwrap().unwrap(), google);
    assert!(store.find_identity(&project, "google", "12345").await.unwrap().is_none());
    assert_eq!(store.list_identities(ada).await.unwrap(), [google.clone(), okta.clone()]);

    assert!(!store.delete_identity(&Identity { user_id: bob, ..google.clone() }).await.unwrap(), "not bob's");
    assert!(store.find_identity(&project, "google", "1234").await.unwrap().is_some());
    assert!(store.delete_identity(&google).await.unwrap());
    assert!(store.find_identity(&project, "google", "1234").await.unwrap().is_none());
    assert_eq!(store.list_identities(ada).await.unwrap(), [okta]);
    assert!(store.create_identity(identity(bob, "google", "1234", 4000)).await.unwrap(), "free again");
}

pub async fn accounts_are_counted_per_project(store: Arc<dyn Store>) {
    let (project, other) = (ProjectId::default_project(), ProjectId("other".into()));
    assert_eq!(store.count_users(&project).await.unwrap(), 0);
    let mut made = Vec::new();
    for i in 0..3 {
        made.push(store.create_user(user(&format!("c{i}@x.io"), None)).await.unwrap());
    }
    store.create_user(User { project: other.clone(), ..user("c0@x.io", None) }).await.unwrap();
    // A refused create counts nothing.
    assert!(store.create_user(user("c1@x.io", None)).await.is_err());
    assert_eq!(store.count_users(&project).await.unwrap(), 3);
    assert_eq!(store.count_users(&other).await.unwrap(), 1);
    assert_eq!(store.count_users(&ProjectId("none".into())).await.unwrap(), 0);
    assert!(store.delete_user(made[0].id).await.unwrap());
    // A second delete of the same account counts nothing.
    assert!(!store.delete_user(made[0].id).await.unwrap());
    assert_eq!(store.count_users(&project).await.unwrap(), 2);
    assert_eq!(store.count_users(&other).await.unwrap(), 1);
}

pub async fn login_tallies_are_summed_over_nodes_and_minutes(store: Arc<dyn Store>) {
    use super::{LoginCounts, LoginTally};
    let (project, other) = (ProjectId::default_project(), ProjectId("other".into()));
    // The last minute of an hour, so the window spans two.
    let minute = T0.0.div_euclid(60_000).div_euclid(60) * 60 + 59;
    let tally = |project: &ProjectId, minute: i64, node: &str, succeeded: u64, failed: u64| LoginTally {
        project: project.clone(),
        minute,
        node: node.to_owned(),
        counts: LoginCounts { succeeded, failed },
    };
    store.put_login_tally(tally(&project, minute, "a", 1, 1)).await.unwrap();
    // A node's later totals of the same minute replace its earlier ones.
    store.put_login_tally(tally(&project, minute, "a", 2, 3)).await.unwrap();
    store.put_login_tally(tally(&project, minute, "b", 5, 0)).await.unwrap();
    store.put_login_tally(tally(&project, minute + 1, "a", 7, 1)).await.unwrap();
    store.put_login_tally(tally(&project, minute - 30, "b", 100, 100)).await.unwrap();
    store.put_login_tally(tally(&other, minute, "a", 1000, 1000)).await.unwrap();
    let sum = |from, to| {
        let (store, project) = (Arc::clone(&store), project.clone());
        async move { store.sum_login_tallies(&project, from, to).await.unwrap() }
    };
    assert_eq!(sum(minute, minute + 1).await, LoginCounts { succeeded: 14, failed: 4 });
    assert_eq!(sum(minute - 30, minute).await, LoginCounts { succeeded: 107, failed: 103 });
    assert_eq!(sum(minute + 1, minute + 59).await, LoginCounts { succeeded: 7, failed: 1 });
    assert_eq!(sum(minute + 2, minute + 60).await, LoginCounts::default());
    assert_eq!(
        store.sum_login_tallies(&ProjectId("none".into()), minute - 60, minute + 60).await.unwrap(),
        LoginCounts::default()
    );
}

/// Instantiates every contract case as a test, each on a store from `$make`.
#[macro_export]
macro_rules! contract_tests {
    ($make:expr) => {
        $crate::contract_tests!(@cases $make;
            first_user_of_default_project_is_superadmin,
            email_and_username_are_unique_per_project,
            racing_creates_of_one_email_make_one_user,
            users_are_found_by_id_email_and_username,
            update_moves_the_username_claim,
            sessions_are_listed_and_deleted_with_their_tokens,
            deleting_user_sessions_keeps_the_named_one,
            a_refresh_token_rotates_once,
            racing_rotations_have_one_winner,
            api_keys_are_found_listed_touched_and_deleted,
            a_claim_is_won_once,
            codes_are_replaced_found_and_deleted,
            audit_events_list_newest_first_per_project,
            audit_events_are_upserted_by_id_and_forgotten_after_keep_until,
            projects_are_created_once_and_changed_by_version,
            users_are_listed_by_project_in_pages_and_deleted,
            audit_events_page_newest_first_by_cursor_and_user,
            passkeys_are_unique_by_credential_listed_changed_and_deleted,
            a_ceremony_state_is_taken_once_and_not_after_it_expires,
            identities_are_linked_once_found_listed_and_unlinked,
            accounts_are_counted_per_project,
            login_tallies_are_summed_over_nodes_and_minutes,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                // `None`: the backend's database is not configured here (skipped).
                let Some((store, _guard)) = $make().await else {
                    eprintln!("skipped: no database for this backend");
                    return;
                };
                $crate::store::contract::$case(store).await;
            }
        )*
    };
}
