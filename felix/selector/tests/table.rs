//! Table tests for the selector language: evaluation, absent-label rules, canonical printing
//! and positioned parse errors.

use brindle_selector::Selector;

/// Label sets the evaluation table refers to by name.
fn labels(name: &str) -> Vec<(&'static str, &'static str)> {
    match name {
        "none" => vec![],
        "web" => vec![("app", "web"), ("tier", "frontend"), ("env", "prod")],
        "db" => vec![
            ("app", "db"),
            ("tier", "backend"),
            ("env", "prod"),
            ("pci", ""),
        ],
        "dev" => vec![("app", "web"), ("env", "dev"), ("team", "net-ops")],
        "dotted" => vec![
            ("projectcalico.org/namespace", "kube-system"),
            ("k8s-app", "kube-dns"),
            ("a_b.c-d/e", "x y z"),
        ],
        other => panic!("no label set {other}"),
    }
}

/// (selector, label set, expected).
const EVAL: &[(&str, &str, bool)] = &[
    // all(), global(), empty
    ("all()", "none", true),
    ("all()", "web", true),
    ("", "none", true),
    ("   ", "web", true),
    ("global()", "none", true),
    ("global()", "db", true),
    ("!all()", "web", false),
    ("all ( )", "web", true),
    // has
    ("has(app)", "web", true),
    ("has(app)", "none", false),
    ("has(pci)", "db", true),
    ("has(pci)", "web", false),
    ("!has(pci)", "web", true),
    ("!has(pci)", "db", false),
    ("!has(app)", "none", true),
    ("has( app )", "web", true),
    ("has(projectcalico.org/namespace)", "dotted", true),
    ("has(a_b.c-d/e)", "dotted", true),
    // ==
    ("app == 'web'", "web", true),
    ("app == \"web\"", "web", true),
    ("app=='web'", "web", true),
    ("app == 'db'", "web", false),
    ("app == 'web'", "none", false),
    ("app == ''", "none", false),
    ("pci == ''", "db", true),
    ("pci == ''", "web", false),
    ("app == 'WEB'", "web", false),
    ("a_b.c-d/e == 'x y z'", "dotted", true),
    (
        "projectcalico.org/namespace == 'kube-system'",
        "dotted",
        true,
    ),
    // != (true when absent)
    ("app != 'web'", "web", false),
    ("app != 'db'", "web", true),
    ("app != 'web'", "none", true),
    ("missing != ''", "web", true),
    ("pci != ''", "db", false),
    ("env != 'prod'", "dev", true),
    ("env!='prod'", "db", false),
    // in / not in
    ("app in {'web', 'db'}", "web", true),
    ("app in {'web', 'db'}", "db", true),
    ("app in {'cache'}", "web", false),
    ("app in {}", "web", false),
    ("app in {'web'}", "none", false),
    ("app in {\"web\",\"x\"}", "web", true),
    ("app in{'web'}", "web", true),
    ("app not in {'web', 'db'}", "web", false),
    ("app not in {'cache'}", "web", true),
    ("app not in {'web'}", "none", true),
    ("app not in {}", "none", true),
    ("app not in {}", "web", true),
    ("pci in {''}", "db", true),
    ("pci not in {''}", "db", false),
    ("pci not in {''}", "web", true),
    ("env not  in {'dev'}", "web", true),
    // contains / starts with / ends with
    ("team contains 'ops'", "dev", true),
    ("team contains 'xyz'", "dev", false),
    ("team contains ''", "dev", true),
    ("team contains 'ops'", "web", false),
    ("team contains ''", "web", false),
    ("team starts with 'net'", "dev", true),
    ("team starts with 'ops'", "dev", false),
    ("team starts with 'net'", "none", false),
    ("team ends with 'ops'", "dev", true),
    ("team ends with 'net'", "dev", false),
    ("team ends with 'ops'", "none", false),
    ("k8s-app starts with 'kube'", "dotted", true),
    ("k8s-app ends with 'dns'", "dotted", true),
    ("k8s-app contains '-'", "dotted", true),
    ("team starts   with 'net-'", "dev", true),
    ("!team contains 'ops'", "dev", false),
    ("!team contains 'ops'", "web", true),
    // && and ||
    ("app == 'web' && env == 'prod'", "web", true),
    ("app == 'web' && env == 'prod'", "dev", false),
    ("app == 'web' && env == 'prod'", "none", false),
    ("app == 'web' || app == 'db'", "db", true),
    ("app == 'web' || app == 'db'", "web", true),
    ("app == 'web' || app == 'db'", "none", false),
    ("app == 'x' || app == 'y' || app == 'db'", "db", true),
    ("has(app) && has(tier) && has(env)", "web", true),
    ("has(app) && has(tier) && has(env)", "dev", false),
    ("has(a)||has(app)", "web", true),
    ("has(a)&&has(app)", "web", false),
    // precedence: && binds tighter than ||
    ("app == 'db' || app == 'web' && env == 'dev'", "web", false),
    ("app == 'db' || app == 'web' && env == 'dev'", "dev", true),
    ("app == 'db' || app == 'web' && env == 'dev'", "db", true),
    ("(app == 'db' || app == 'web') && env == 'dev'", "db", false),
    ("(app == 'db' || app == 'web') && env == 'dev'", "dev", true),
    ("app == 'web' && env == 'dev' || app == 'db'", "db", true),
    ("app == 'web' && (env == 'dev' || app == 'db')", "db", false),
    // negation
    ("!app == 'web'", "web", false),
    ("!app == 'web'", "db", true),
    ("!app == 'web'", "none", true),
    ("!(app == 'web')", "db", true),
    ("!!has(app)", "web", true),
    ("!!has(app)", "none", false),
    ("!(has(app) && has(pci))", "db", false),
    ("!(has(app) && has(pci))", "web", true),
    ("!has(app) || has(pci)", "web", false),
    ("!has(app) || has(pci)", "none", true),
    ("!(has(app) || has(pci))", "none", true),
    ("! has(app)", "web", false),
    // parentheses
    ("(has(app))", "web", true),
    ("((has(app)))", "web", true),
    ("( app == 'web' )", "web", true),
    ("(all())", "none", true),
    ("(global()) && has(app)", "web", true),
    ("all() && has(pci)", "db", true),
    ("all() && has(pci)", "web", false),
    ("global() || has(x)", "none", true),
    // quotes
    ("app == \"it's\"", "web", false),
    ("team == 'net-ops'", "dev", true),
    ("team == \"net-ops\"", "dev", true),
    ("tier in {'frontend', \"backend\"}", "db", true),
    // realistic Calico selectors
    (
        "projectcalico.org/namespace == 'kube-system' && k8s-app == 'kube-dns'",
        "dotted",
        true,
    ),
    (
        "projectcalico.org/namespace in {'default', 'kube-system'}",
        "dotted",
        true,
    ),
    ("k8s-app == 'kube-dns' && !has(app)", "dotted", true),
    (
        "env == 'prod' && tier in {'frontend', 'backend'} && !has(pci)",
        "web",
        true,
    ),
    (
        "env == 'prod' && tier in {'frontend', 'backend'} && !has(pci)",
        "db",
        false,
    ),
    ("env != 'dev' && app not in {'db'}", "web", true),
    ("env != 'dev' && app not in {'db'}", "db", false),
    ("env != 'dev' && app not in {'db'}", "none", true),
    (
        "app == 'web' && (env == 'prod' || team starts with 'net')",
        "dev",
        true,
    ),
    (
        "app == 'web' && (env == 'prod' || team starts with 'net')",
        "web",
        true,
    ),
    (
        "app == 'web' && (env == 'prod' || team starts with 'net')",
        "db",
        false,
    ),
    // label names that look like keywords
    ("has(in)", "none", false),
    ("all == 'x'", "none", false),
    ("has != 'x'", "none", true),
    ("global != 'x'", "web", true),
    ("not in {'x'}", "none", false),
    ("contains contains 'x'", "none", false),
    // more absent-label rules
    ("tier != 'frontend'", "dev", true),
    ("tier not in {'frontend', 'backend'}", "dev", true),
    ("tier not in {'frontend', 'backend'}", "db", false),
    ("tier in {'frontend', 'backend'}", "dev", false),
    ("!(tier != 'frontend')", "dev", false),
    ("!(tier not in {'x'})", "none", false),
    ("team starts with ''", "none", false),
    ("team ends with ''", "dev", true),
];

#[test]
fn evaluation_table() {
    let mut failures = Vec::new();
    for (sel, set, want) in EVAL {
        let parsed = Selector::parse(sel).unwrap_or_else(|e| panic!("{sel:?}: {e}"));
        let l = labels(set);
        let got = parsed.matches(l.as_slice());
        if got != *want {
            failures.push(format!("{sel:?} on {set}: got {got}, want {want}"));
        }
        // The canonical form must evaluate the same.
        let reparsed = Selector::parse(&parsed.to_string()).expect("canonical form parses");
        assert_eq!(reparsed, parsed, "round trip of {sel:?} via {parsed}");
        assert_eq!(reparsed.matches(l.as_slice()), got);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(EVAL.len() >= 130, "table has {} rows", EVAL.len());
}

/// (input, canonical form).
const CANONICAL: &[(&str, &str)] = &[
    ("", "all()"),
    ("all()", "all()"),
    ("global( )", "global()"),
    ("has( a )", "has(a)"),
    ("a=='b'", "a == \"b\""),
    ("a!=\"b\"", "a != \"b\""),
    ("a in {'z','a','z'}", "a in {\"a\", \"z\"}"),
    ("a not in {}", "a not in {}"),
    ("a contains 'x'", "a contains \"x\""),
    ("a starts  with 'x'", "a starts with \"x\""),
    ("a ends with 'x'", "a ends with \"x\""),
    ("a == 'say \"hi\"'", "a == 'say \"hi\"'"),
    ("has(a)&&has(b)||has(c)", "has(a) && has(b) || has(c)"),
    ("has(a)&&(has(b)||has(c))", "has(a) && (has(b) || has(c))"),
    ("(has(a)&&has(b))&&has(c)", "(has(a) && has(b)) && has(c)"),
    ("((has(a)))", "has(a)"),
    ("!(has(a))", "!has(a)"),
    ("!(a == 'x')", "!a == \"x\""),
    ("!(has(a) && has(b))", "!(has(a) && has(b))"),
    ("!(has(a) || has(b))", "!(has(a) || has(b))"),
    ("!!has(a)", "!!has(a)"),
    (
        "(has(a) || has(b)) || has(c)",
        "(has(a) || has(b)) || has(c)",
    ),
];

#[test]
fn canonical_printing() {
    for (input, want) in CANONICAL {
        let sel = Selector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(sel.to_string(), *want, "canonical form of {input:?}");
        assert_eq!(Selector::parse(want).unwrap(), sel, "reparse of {want:?}");
    }
}

/// (input, error offset, fragment of the message).
const ERRORS: &[(&str, usize, &str)] = &[
    ("app ==", 6, "quoted string"),
    ("app == web", 7, "quoted string"),
    ("app == 'web", 7, "unterminated"),
    ("app == \"web", 7, "unterminated"),
    ("app", 3, "operator"),
    ("app = 'x'", 4, "operator"),
    ("app === 'x'", 6, "quoted string"),
    ("has(app", 7, "expected ')'"),
    ("has()", 4, "label name"),
    ("has app", 4, "operator"),
    ("all(", 4, "expected ')'"),
    ("global(x)", 7, "expected ')'"),
    ("(has(a)", 7, "expected ')'"),
    ("has(a))", 6, "unexpected ')'"),
    ("has(a) &&", 9, "label name"),
    ("has(a) ||", 9, "label name"),
    ("&& has(a)", 0, "label name"),
    ("has(a) & has(b)", 7, "unexpected '&'"),
    ("has(a) | has(b)", 7, "unexpected '|'"),
    ("has(a) has(b)", 7, "unexpected 'h'"),
    ("a in 'x'", 5, "expected '{'"),
    ("a in {'x'", 9, "expected ',' or '}'"),
    ("a in {'x' 'y'}", 10, "expected ',' or '}'"),
    ("a in {x}", 6, "quoted string"),
    ("a in {'x',}", 10, "quoted string"),
    ("a not {'x'}", 6, "expected 'in'"),
    ("a starts 'x'", 9, "expected 'with'"),
    ("a ends 'x'", 7, "expected 'with'"),
    ("a contains", 10, "quoted string"),
    ("!", 1, "label name"),
    ("()", 1, "label name"),
    ("a == 'x' b", 9, "unexpected 'b'"),
    ("a == 'é' &", 10, "unexpected '&'"),
    ("é == 'x'", 0, "label name"),
    ("a$ == 'x'", 1, "operator"),
    ("a == 'x' && (", 13, "label name"),
];

#[test]
fn parse_errors_are_positioned() {
    for (input, offset, fragment) in ERRORS {
        let err = Selector::parse(input).expect_err(input);
        assert_eq!(err.offset, *offset, "offset for {input:?}: {err}");
        assert!(
            err.message.contains(fragment),
            "message for {input:?}: {err}"
        );
    }
}

#[test]
fn nesting_is_bounded() {
    let deep = "(".repeat(10_000) + "has(a)" + &")".repeat(10_000);
    let err = Selector::parse(&deep).expect_err("too deep");
    assert!(err.message.contains("nested deeper"), "{err}");
    let bangs = "!".repeat(10_000) + "has(a)";
    assert!(Selector::parse(&bangs).is_err());
    let ok = "(".repeat(50) + "has(a)" + &")".repeat(50);
    assert_eq!(Selector::parse(&ok).unwrap(), Selector::Has("a".into()));
}

#[test]
fn label_keys_and_global() {
    let sel = Selector::parse("a == 'x' && (has(b) || c not in {'y'}) && !d contains 'z'").unwrap();
    assert_eq!(
        sel.label_keys().into_iter().collect::<Vec<_>>(),
        vec!["a", "b", "c", "d"]
    );
    assert!(Selector::parse("global()").unwrap().is_global());
    assert!(!Selector::parse("all()").unwrap().is_global());
}

#[test]
fn works_with_maps() {
    use std::collections::{BTreeMap, HashMap};
    let sel = Selector::parse("app == 'web'").unwrap();
    let b: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
    let h: HashMap<String, String> = [("app".to_string(), "db".to_string())].into();
    assert!(sel.matches(&b));
    assert!(!sel.matches(&h));
    let s: Selector = "has(app)".parse().unwrap();
    assert!(s.matches(&b));
}

#[test]
fn required_values_for_index_lookups() {
    let rv = |s: &str| {
        Selector::parse(s).unwrap().required_values().map(|(k, v)| {
            (
                k.to_string(),
                v.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
            )
        })
    };
    assert_eq!(rv("app == 'a'"), Some(("app".into(), vec!["a".into()])));
    assert_eq!(
        rv("has(x) && tier in {'b', 'a'}"),
        Some(("tier".into(), vec!["a".into(), "b".into()]))
    );
    assert_eq!(rv("app == 'a' || app == 'b'"), None);
    assert_eq!(rv("app != 'a'"), None);
    assert_eq!(rv("all()"), None);
    assert_eq!(rv("!(app == 'a')"), None);
}

#[test]
fn keys_map_to_service_account_labels() {
    let s = Selector::parse("team == 'web' && !has(tmp) || role in {'a'}").unwrap();
    let m = s.map_keys(&|k| format!("pcsa.{k}"));
    assert_eq!(
        m.to_string(),
        "pcsa.team == \"web\" && !has(pcsa.tmp) || pcsa.role in {\"a\"}"
    );
    assert_eq!(Selector::parse(&m.to_string()).unwrap(), m);
}
