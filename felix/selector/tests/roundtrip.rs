//! Property tests: printing then parsing gives back the same selector, printing is stable, and
//! arbitrary input never panics the parser.

use std::collections::BTreeMap;

use brindle_selector::Selector;
use proptest::prelude::*;

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("app".to_string()),
        Just("projectcalico.org/namespace".to_string()),
        "[a-z][a-z0-9_./-]{0,12}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z0-9 ._-]{0,8}",
        "[a-z]{0,3}\"[a-z]{0,3}",
        "[a-z]{0,3}'[a-z]{0,3}",
    ]
}

fn leaf() -> impl Strategy<Value = Selector> {
    prop_oneof![
        Just(Selector::All),
        Just(Selector::Global),
        key().prop_map(Selector::Has),
        (key(), value()).prop_map(|(k, v)| Selector::Eq(k, v)),
        (key(), value()).prop_map(|(k, v)| Selector::NotEq(k, v)),
        (key(), prop::collection::btree_set(value(), 0..4)).prop_map(|(k, s)| Selector::In(k, s)),
        (key(), prop::collection::btree_set(value(), 0..4))
            .prop_map(|(k, s)| Selector::NotIn(k, s)),
        (key(), value()).prop_map(|(k, v)| Selector::Contains(k, v)),
        (key(), value()).prop_map(|(k, v)| Selector::StartsWith(k, v)),
        (key(), value()).prop_map(|(k, v)| Selector::EndsWith(k, v)),
    ]
}

fn selector() -> impl Strategy<Value = Selector> {
    leaf().prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|s| Selector::Not(Box::new(s))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Selector::And),
            prop::collection::vec(inner, 2..4).prop_map(Selector::Or),
        ]
    })
}

fn label_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(key(), value(), 0..5)
}

proptest! {
    #[test]
    fn print_parse_round_trip(sel in selector()) {
        let printed = sel.to_string();
        let reparsed = Selector::parse(&printed)
            .map_err(|e| TestCaseError::fail(format!("{printed:?}: {e}")))?;
        prop_assert_eq!(&reparsed, &sel, "printed as {}", printed);
        prop_assert_eq!(reparsed.to_string(), printed);
    }

    #[test]
    fn canonical_form_evaluates_the_same(sel in selector(), labels in label_map()) {
        let reparsed = Selector::parse(&sel.to_string()).unwrap();
        prop_assert_eq!(reparsed.matches(&labels), sel.matches(&labels));
    }

    #[test]
    fn parser_never_panics(input in "[ -~]{0,64}") {
        let _ = Selector::parse(&input);
    }

    #[test]
    fn parser_never_panics_on_selector_like_input(
        parts in prop::collection::vec(prop_oneof![
            Just("has("), Just(")"), Just("("), Just("&&"), Just("||"), Just("!"), Just("=="),
            Just("!="), Just(" in "), Just(" not in "), Just("{"), Just("}"), Just(","),
            Just("'x'"), Just("\""), Just("a"), Just("all()"), Just(" starts with "),
        ], 0..20)
    ) {
        let input: String = parts.concat();
        if let Err(e) = Selector::parse(&input) {
            prop_assert!(e.offset <= input.len());
        }
    }

    #[test]
    fn not_equal_is_true_when_absent(k in key(), v in value()) {
        let empty: BTreeMap<String, String> = BTreeMap::new();
        prop_assert!(Selector::NotEq(k.clone(), v.clone()).matches(&empty));
        prop_assert!(!Selector::Eq(k, v).matches(&empty));
    }
}
