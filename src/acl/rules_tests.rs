use super::*;
use crate::acl::selector::PERM_READ;
use crate::command;

fn user(rules: &str) -> Result<User, String> {
    let mut u = User::new("u");
    apply_rules(&mut u, rules).map_err(|e| e.to_string())?;
    Ok(u)
}

fn id(name: &str) -> u16 {
    command::by_name(name.as_bytes()).expect(name).id
}

#[test]
fn flags_and_passwords() {
    let u = user("on >secret ~* &* +@all").unwrap();
    assert!(u.enabled && !u.nopass && u.root().all_commands && u.root().all_keys);
    assert!(u.password_matches(b"secret") && !u.password_matches(b"Secret"));
    let u = user("on >a nopass").unwrap();
    assert!(u.nopass && u.passwords.is_empty() && u.password_matches(b"anything"));
    let u = user(">a >b <a").unwrap();
    assert!(!u.password_matches(b"a") && u.password_matches(b"b"));
    let mut fresh = User::new("u");
    fresh.sanitize_payload = true;
    assert_eq!(user("on >a ~* &* +@all (~x +get) reset").unwrap(), fresh);
    let h = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"; // "secret"
    assert!(user(&format!("#{h}")).unwrap().password_matches(b"secret"));
    assert!(user(&format!("#{h} !{h}")).unwrap().passwords.is_empty());
}

#[test]
fn redis_error_texts() {
    let e = |r: &str| user(r).unwrap_err();
    assert_eq!(
        e("on bogus"),
        "Error in ACL SETUSER modifier 'bogus': Syntax error"
    );
    assert_eq!(
        e("+nosuch"),
        "Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL"
    );
    assert_eq!(
        e("-select|0"),
        "Error in ACL SETUSER modifier '-select|0': Unknown command or category name in ACL"
    );
    assert_eq!(e("+config|get|x"), "Error in ACL SETUSER modifier '+config|get|x': Allowing first-arg of a subcommand is not supported");
    assert_eq!(
        e("+debug|"),
        "Error in ACL SETUSER modifier '+debug|': Syntax error"
    );
    assert_eq!(
        e("+get|a|b"),
        "Error in ACL SETUSER modifier '+get|a|b': Unknown command or category name in ACL"
    );
    assert_eq!(
        e("+@nosuch"),
        "Error in ACL SETUSER modifier '+@nosuch': Unknown command or category name in ACL"
    );
    assert!(e("~* ~foo").contains("Try 'resetkeys'"));
    assert!(e("&* &foo").contains("Try 'resetchannels'"));
    assert_eq!(
        e("%~foo"),
        "Error in ACL SETUSER modifier '%~foo': Syntax error"
    );
    assert_eq!(e("%"), "Error in ACL SETUSER modifier '%': Syntax error");
    assert_eq!(
        e("%RR~foo"),
        "Error in ACL SETUSER modifier '%RR~foo': Syntax error"
    );
    assert_eq!(
        e("(on)"),
        "Error in ACL SETUSER modifier '(on)': Syntax error"
    );
    assert_eq!(e(")"), "Error in ACL SETUSER modifier ')': Syntax error");
    assert_eq!(
        e("(~x +get"),
        "Unmatched parenthesis in acl selector starting at '(~x'."
    );
    assert_eq!(e("#abc"), "Error in ACL SETUSER modifier '#abc': The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters");
    assert_eq!(e("<nothere"), "Error in ACL SETUSER modifier '<nothere': The password you are trying to remove from the user does not exist");
}

#[test]
fn errors_leave_the_user_unchanged() {
    let mut u = User::new("u");
    assert!(apply_rules(&mut u, "on +get bogus").is_err());
    assert_eq!(u, User::new("u"));
}

#[test]
fn commands_categories_and_order() {
    let u = user("+@all -debug").unwrap();
    assert!(!u.root().allows_id(id("debug")) && !u.root().all_commands);
    let u = user("-debug +@all").unwrap();
    assert!(u.root().allows_id(id("debug")) && u.root().all_commands);
    let u = user("+config -config|set").unwrap();
    assert!(u.root().allows_id(id("config|get")) && !u.root().allows_id(id("config|set")));
    let u = user("+config -config|set +config").unwrap();
    assert!(u.root().allows_id(id("config|set")));
    let u = user("+@read").unwrap();
    assert!(u.root().allows_id(id("get")) && !u.root().allows_id(id("set")));
    let u = user("+client|id").unwrap();
    assert!(u.root().allows_id(id("client|id")) && !u.root().allows_id(id("client|kill")));
    let u = user("+select|0 +SELECT|0").unwrap();
    assert_eq!(
        u.root().first_args,
        vec![(id("select"), vec![b"0".to_vec()])]
    );
    assert!(user("+select|0 +select")
        .unwrap()
        .root()
        .first_args
        .is_empty());
}

#[test]
fn key_and_channel_patterns() {
    let u = user("%R~foo %W~foo ~bar %R ").unwrap();
    let keys: Vec<_> = u
        .root()
        .keys
        .iter()
        .map(|k| (k.pattern.clone(), k.perms))
        .collect();
    assert_eq!(
        keys,
        vec![
            (b"foo".to_vec(), 3),
            (b"bar".to_vec(), 3),
            (Vec::new(), PERM_READ)
        ]
    );
    let u = user("%RW~*").unwrap();
    assert!(!u.root().all_keys && u.root().keys[0].pattern == b"*");
    let u = user("&a &a &b").unwrap();
    assert_eq!(u.root().channels, vec![b"a".to_vec(), b"b".to_vec()]);
}

#[test]
fn selectors() {
    let u = user("+get (~a* +set) (  ) ( %R~x  +@read )").unwrap();
    assert_eq!(u.selectors.len(), 4);
    assert!(u.selectors[1].allows_id(id("set")) && u.selectors[1].keys[0].pattern == b"a*");
    assert!(u.selectors[3].allows_id(id("get")));
    let u = user("(+get) clearselectors").unwrap();
    assert_eq!(u.selectors.len(), 1);
}

/// Redis's `ACLMergeSelectorArguments` restarts an open selector at the next token
/// that starts one (found by tests/acl_vs_redis.rs).
#[test]
fn an_opening_token_restarts_an_open_selector() {
    let u = user("(~a (~b +get)").unwrap();
    assert_eq!(u.selectors.len(), 2);
    assert_eq!(u.selectors[1].keys[0].pattern, b"b");
    assert!(u.selectors[1].allows_id(id("get")));
    assert_eq!(
        user("(~a (~b").unwrap_err(),
        "Unmatched parenthesis in acl selector starting at '(~b'."
    );
    assert_eq!(
        user("( ) (~x +get) (%R (on)").unwrap_err(),
        "Error in ACL SETUSER modifier '(%R (on)': Syntax error"
    );
}

#[test]
fn nul_bytes_in_rules_are_refused() {
    assert_eq!(
        user("on\0x").unwrap_err(),
        "Error in ACL SETUSER modifier 'on\\0x': Syntax error"
    );
}
