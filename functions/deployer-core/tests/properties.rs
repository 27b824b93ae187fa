//! Property tests of the deployer's edges: the ECR event the trigger reads, the target spec a team
//! writes, and the JSON comparison the smoke test judges with. Each property runs 256 cases.
//!
//! - `parse_push` never panics, whatever JSON arrives, and whatever is done to a valid event; what it
//!   accepts is exactly what the event says; a valid event always parses back to its own fields.
//! - `spec::parse` never panics on any string or JSON; the numeric limits are enforced exactly, and a
//!   refusal names each field that is out of range.
//! - `decisions::compare` finds nothing between a value and itself, and exactly the one path where a
//!   number moved by more than the tolerance.

use deployer_core::decisions::compare;
use deployer_core::event::{parse_push, NotAPush};
use deployer_core::spec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Value};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

/// Names the parsers look for, so that arbitrary objects sometimes carry them.
const KNOWN_KEYS: &[&str] = &[
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
    "action-type",
    "result",
    "repository-name",
    "image-digest",
    "image-tag",
    "function",
    "repository",
    "tagPattern",
    "alias",
    "configuration",
    "role",
    "memoryMb",
    "timeoutSeconds",
    "ephemeralStorageMb",
    "environment",
    "logging",
    "smokeTest",
    "cases",
    "name",
    "payload",
    "expect",
    "tolerance",
    "strategy",
    "type",
];

/// Values the parsers compare against, so that arbitrary leaves sometimes hit them.
const KNOWN_STRINGS: &[&str] = &[
    "aws.ecr",
    "ECR Image Action",
    "PUSH",
    "DELETE",
    "SUCCESS",
    "FAILURE",
    ACCOUNT,
    REGION,
    "2026-11-27T00:00:00Z",
    "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    "ml-inference",
    "sha-1234567",
    "all-at-once",
    "x86_64",
    "JSON",
    "",
];

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![select(KNOWN_KEYS).prop_map(str::to_string), ".{0,8}"]
}

fn arb_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        (-20_000i64..20_000).prop_map(Value::from),
    ]
}

/// Any JSON value: scalars, then arrays and objects of them, up to 4 levels deep.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_number(),
        ".{0,20}".prop_map(Value::String),
        select(KNOWN_STRINGS).prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((arb_key(), inner), 0..8).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

// ---------------------------------------------------------------------------------------------------
// (a) The ECR event
// ---------------------------------------------------------------------------------------------------

fn ecr_event(id: &str, repository: &str, digest: &str, tag: &str) -> Value {
    json!({"version": "0", "id": id, "detail-type": "ECR Image Action", "source": "aws.ecr",
           "account": ACCOUNT, "time": "2026-11-27T00:00:00Z", "region": REGION, "resources": [],
           "detail": {"result": "SUCCESS", "repository-name": repository, "image-digest": digest,
                      "action-type": "PUSH", "image-tag": tag}})
}

fn valid_event() -> Value {
    ecr_event("e1", "ml-inference", KNOWN_STRINGS[9], "sha-1234567")
}

/// Where a mutation lands: a top-level field, or a field of `detail`.
const EVENT_PATHS: &[&[&str]] = &[
    &["version"],
    &["id"],
    &["detail-type"],
    &["source"],
    &["account"],
    &["time"],
    &["region"],
    &["resources"],
    &["detail"],
    &["detail", "action-type"],
    &["detail", "result"],
    &["detail", "repository-name"],
    &["detail", "image-digest"],
    &["detail", "image-tag"],
    &["detail", "manifest-media-type"],
];

/// A change to one string, applied at character boundaries whatever the string is.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, char),
    Delete(usize),
    Replace(usize, char),
    Truncate(usize),
    Empty,
    Upper,
    Double,
    Pad(String),
}

fn arb_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<char>()).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), any::<char>()).prop_map(|(i, c)| Edit::Replace(i, c)),
        any::<usize>().prop_map(Edit::Truncate),
        Just(Edit::Empty),
        Just(Edit::Upper),
        Just(Edit::Double),
        "[ \t\n]{1,3}".prop_map(Edit::Pad),
    ]
}

fn apply_edit(s: &str, edit: &Edit) -> String {
    let chars: Vec<char> = s.chars().collect();
    let at = |i: usize, n: usize| if n == 0 { 0 } else { i % n };
    match edit {
        Edit::Insert(i, c) => {
            let mut v = chars.clone();
            v.insert(at(*i, chars.len() + 1), *c);
            v.into_iter().collect()
        }
        Edit::Delete(i) if !chars.is_empty() => {
            let mut v = chars.clone();
            v.remove(at(*i, chars.len()));
            v.into_iter().collect()
        }
        Edit::Replace(i, c) if !chars.is_empty() => {
            let mut v = chars.clone();
            v[at(*i, chars.len())] = *c;
            v.into_iter().collect()
        }
        Edit::Delete(_) | Edit::Replace(_, _) => s.to_string(),
        Edit::Truncate(i) => chars[..at(*i, chars.len() + 1)].iter().collect(),
        Edit::Empty => String::new(),
        Edit::Upper => s.to_uppercase(),
        Edit::Double => format!("{s}{s}"),
        Edit::Pad(p) => format!("{p}{s}{p}"),
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Remove,
    Replace(Value),
    Edit(Edit),
}

fn arb_mutation() -> impl Strategy<Value = (&'static [&'static str], Mutation)> {
    let m = prop_oneof![
        Just(Mutation::Remove),
        arb_json().prop_map(Mutation::Replace),
        arb_edit().prop_map(Mutation::Edit),
    ];
    (select(EVENT_PATHS), m)
}

fn mutate(doc: &mut Value, path: &[&str], m: &Mutation) {
    let (last, parents) = path.split_last().unwrap_or_else(|| unreachable!("paths are not empty"));
    let mut at = &mut *doc;
    for p in parents {
        match at.get_mut(*p) {
            Some(v) => at = v,
            None => return,
        }
    }
    let Some(obj) = at.as_object_mut() else { return };
    match m {
        Mutation::Remove => {
            obj.remove(*last);
        }
        Mutation::Replace(v) => {
            obj.insert(last.to_string(), v.clone());
        }
        Mutation::Edit(e) => {
            if let Some(Value::String(s)) = obj.get(*last) {
                let edited = apply_edit(s, e);
                obj.insert(last.to_string(), Value::String(edited));
            }
        }
    }
}

/// Lowercase hex, as ECR's digests are.
fn arb_digest() -> impl Strategy<Value = String> {
    "[0-9a-f]{64}".prop_map(|h| format!("sha256:{h}"))
}

/// ECR's tag format: a letter, digit or '_', then up to 127 of those, '.' or '-'.
fn arb_tag() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127}"
}

/// ECR's repository names as the deployer accepts them.
fn arb_repository() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9._/-]{1,60}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parse_push_never_panics_on_any_json(v in arb_json()) {
        let _ = parse_push(&v, ACCOUNT, REGION);
        let wrapped = json!({"detail-type": "ECR Image Action", "source": "aws.ecr", "detail": v});
        let _ = parse_push(&wrapped, ACCOUNT, REGION);
    }

    #[test]
    fn parse_push_accepts_a_mutated_event_only_when_it_is_still_a_push(
        mutations in prop::collection::vec(arb_mutation(), 1..5)
    ) {
        let mut ev = valid_event();
        for (path, m) in &mutations {
            mutate(&mut ev, path, m);
        }
        let got = parse_push(&ev, ACCOUNT, REGION);
        if let Ok(p) = got {
            // Everything it acted on is what the event says, and the event is the trigger's to act on.
            prop_assert_eq!(&ev["source"], "aws.ecr");
            prop_assert_eq!(&ev["detail-type"], "ECR Image Action");
            prop_assert!(matches!(ev.get("account"), None | Some(Value::Null)) || ev["account"] == ACCOUNT, "{}", ev);
            prop_assert!(matches!(ev.get("region"), None | Some(Value::Null)) || ev["region"] == REGION, "{}", ev);
            let d = &ev["detail"];
            prop_assert_eq!(&d["action-type"], "PUSH");
            prop_assert_eq!(&d["result"], "SUCCESS");
            prop_assert_eq!(&d["repository-name"], p.repository.as_str());
            prop_assert_eq!(&d["image-digest"], p.digest.as_str());
            prop_assert_eq!(&d["image-tag"], p.tag.as_str());
            prop_assert!(!p.tag.is_empty());
        }
    }

    #[test]
    fn a_valid_event_parses_back_to_its_fields(
        id in "[a-z0-9-]{1,36}", repository in arb_repository(), digest in arb_digest(), tag in arb_tag()
    ) {
        let p = parse_push(&ecr_event(&id, &repository, &digest, &tag), ACCOUNT, REGION);
        let p = p.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(p.event_id, id);
        prop_assert_eq!(p.repository.as_str(), repository);
        prop_assert_eq!(p.digest.as_str(), digest);
        prop_assert_eq!(p.tag, tag);
    }

    #[test]
    fn a_valid_event_with_a_bad_digest_is_invalid(
        repository in arb_repository(), tag in arb_tag(),
        digest in prop_oneof!["[0-9a-f]{0,63}", "[0-9a-f]{65,70}", "[0-9A-F]{64}", "[g-z]{64}"]
            .prop_map(|h| format!("sha256:{h}"))
    ) {
        let got = parse_push(&ecr_event("e1", &repository, &digest, &tag), ACCOUNT, REGION);
        match got {
            Err(NotAPush::Invalid(m)) => prop_assert!(m.contains("image digest"), "{}", m),
            other => prop_assert!(false, "{} gave {:?}", digest, other),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// (b) The target spec
// ---------------------------------------------------------------------------------------------------

fn valid_spec() -> Value {
    json!({
        "function": "ml-inference",
        "repository": "ml-inference",
        "tagPattern": "^sha-[0-9a-f]{7,40}$",
        "configuration": {"role": "arn:aws:iam::123456789012:role/ml", "memoryMb": 512, "timeoutSeconds": 10,
                          "ephemeralStorageMb": 512, "environment": {"MODEL_NAME": "bc"}},
        "smokeTest": {"latencyBudgetMs": 800, "cases": [{"name": "golden", "payload": {"x": 1}, "expect": {"y": 2}}]}
    })
}

const SPEC_PATHS: &[&[&str]] = &[
    &["function"],
    &["repository"],
    &["tagPattern"],
    &["alias"],
    &["configuration"],
    &["configuration", "role"],
    &["configuration", "memoryMb"],
    &["configuration", "architecture"],
    &["configuration", "environment"],
    &["configuration", "logging"],
    &["smokeTest"],
    &["smokeTest", "cases"],
    &["smokeTest", "latencyBudgetMs"],
    &["strategy"],
    &["readyTimeoutSeconds"],
];

/// A numeric field's value: mostly near Lambda's limits, sometimes anything a JSON integer can be.
fn arb_limit_value() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => select(vec![-1i64, 0, 1, 2, 127, 128, 129, 511, 512, 513, 899, 900, 901, 10_239, 10_240, 10_241]),
        4 => -100i64..12_000,
        1 => any::<i64>(),
    ]
}

const LIMITS: [(&str, std::ops::RangeInclusive<i64>); 3] =
    [("memoryMb", 128..=10_240), ("timeoutSeconds", 1..=900), ("ephemeralStorageMb", 512..=10_240)];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn spec_parse_never_panics_on_any_string(s in ".{0,200}") {
        let _ = spec::parse(&s);
    }

    #[test]
    fn spec_parse_never_panics_on_a_truncated_spec(cut in any::<usize>()) {
        let text = valid_spec().to_string();
        let chars: Vec<char> = text.chars().collect();
        let cut: String = chars[..cut % (chars.len() + 1)].iter().collect();
        let _ = spec::parse(&cut);
    }

    #[test]
    fn spec_parse_never_panics_on_any_json(v in arb_json()) {
        let _ = spec::parse(&v.to_string());
    }

    #[test]
    fn spec_parse_never_panics_on_a_spec_with_fields_replaced(
        changes in prop::collection::vec((select(SPEC_PATHS), prop_oneof![
            Just(Mutation::Remove), arb_json().prop_map(Mutation::Replace), arb_edit().prop_map(Mutation::Edit),
        ]), 1..4)
    ) {
        let mut doc = valid_spec();
        for (path, m) in &changes {
            mutate(&mut doc, path, m);
        }
        let _ = spec::parse(&doc.to_string());
    }

    #[test]
    fn spec_limits_are_enforced_exactly_and_each_bad_field_is_named(
        values in [arb_limit_value(), arb_limit_value(), arb_limit_value()]
    ) {
        let mut doc = valid_spec();
        for ((field, _), v) in LIMITS.iter().zip(values) {
            doc["configuration"][*field] = json!(v);
        }
        let bad: Vec<&str> = LIMITS
            .iter()
            .zip(values)
            .filter(|((_, range), v)| !range.contains(v))
            .map(|((field, _), _)| *field)
            .collect();
        // A timeout in range can still be too long for the smoke cases: they all run, with a warm-up, in one
        // invocation of the Smoke Test step (900 s, 30 of them its own).
        let cases = doc["smokeTest"]["cases"].as_array().map_or(0, Vec::len) as i64;
        let smoke_too_long = bad.is_empty() && (cases + 1) * values[1] + 30 > 900;
        match spec::parse(&doc.to_string()) {
            Ok(s) => {
                prop_assert!(bad.is_empty(), "accepted {:?} although {:?} are out of range", values, bad);
                prop_assert!(!smoke_too_long, "accepted timeoutSeconds {} for {} smoke case(s)", values[1], cases);
                let c = &s.configuration;
                prop_assert_eq!(
                    [i64::from(c.memory_mb), i64::from(c.timeout_seconds), i64::from(c.ephemeral_storage_mb)],
                    values
                );
            }
            Err(e) if smoke_too_long => {
                let msg = e.to_string();
                prop_assert!(msg.contains("smokeTest.cases: ") && msg.contains("at most 900 s"), "{}", msg);
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(!bad.is_empty(), "refused {:?}, all in range: {}", values, msg);
                let named: Vec<&str> = LIMITS
                    .iter()
                    .map(|(f, _)| *f)
                    .filter(|f| msg.contains(&format!("configuration.{f}:")))
                    .collect();
                let fits_u32 = values.iter().all(|v| u32::try_from(*v).is_ok());
                if fits_u32 {
                    // Validation reports every problem at once.
                    prop_assert_eq!(&named, &bad, "{}", msg);
                } else {
                    // A number no u32 holds stops deserialization at the first such field.
                    prop_assert!(!named.is_empty() && named.iter().all(|f| bad.contains(f)), "{}", msg);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// (c) The smoke test's comparison
// ---------------------------------------------------------------------------------------------------

/// JSON whose numbers are small enough that adding a tolerance to one of them is exact enough to judge.
fn arb_comparable() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1_000_000i64..1_000_000).prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,4}", inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Every number in `v` with the path `compare` reports it under, in document order.
fn number_paths(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Number(_) => out.push(path.to_string()),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| number_paths(x, &format!("{path}[{i}]"), out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| number_paths(x, &format!("{path}.{k}"), out)),
        _ => {}
    }
}

/// The `n`-th number of `v` (document order), moved by `by`.
fn shift_number(v: &mut Value, n: &mut usize, by: f64) -> bool {
    match v {
        Value::Number(x) => {
            if *n == 0 {
                *v = Value::from(x.as_f64().unwrap_or_else(|| unreachable!("generated numbers are finite")) + by);
                return true;
            }
            *n -= 1;
            false
        }
        Value::Array(a) => a.iter_mut().any(|x| shift_number(x, n, by)),
        Value::Object(o) => o.values_mut().any(|x| shift_number(x, n, by)),
        _ => false,
    }
}

fn diffs(expected: &Value, actual: &Value, tolerance: f64) -> Vec<String> {
    let mut out = Vec::new();
    compare(expected, actual, tolerance, "$", &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_value_compared_with_itself_reports_nothing(v in arb_json(), tolerance in prop_oneof![Just(0.0), 0.0f64..10.0]) {
        prop_assert_eq!(diffs(&v, &v, tolerance), Vec::<String>::new());
    }

    #[test]
    fn a_number_moved_beyond_the_tolerance_is_reported_at_its_path_only(
        v in arb_comparable().prop_map(|v| json!({"wrapped": [v, 1.5]})),
        pick in any::<prop::sample::Index>(),
        tolerance in prop_oneof![Just(0.0), 1e-9f64..1e-3, 0.0f64..100.0],
        beyond in 1e-3f64..1e3,
        negative in any::<bool>(),
    ) {
        let mut paths = Vec::new();
        number_paths(&v, "$", &mut paths);
        let n = pick.index(paths.len());
        let by = (tolerance + beyond) * if negative { -1.0 } else { 1.0 };
        let mut changed = v.clone();
        prop_assert!(shift_number(&mut changed, &mut n.clone(), by));
        let got = diffs(&v, &changed, tolerance);
        prop_assert_eq!(got.len(), 1, "{:?}", got);
        prop_assert!(got[0].starts_with(&format!("{} is ", paths[n])), "{} vs {}", got[0], paths[n]);
    }

    #[test]
    fn a_number_moved_within_the_tolerance_is_not_reported(
        v in arb_comparable().prop_map(|v| json!({"wrapped": [v, 1.5]})),
        pick in any::<prop::sample::Index>(),
        tolerance in 1e-3f64..100.0,
        fraction in 0.0f64..0.99,
    ) {
        let mut paths = Vec::new();
        number_paths(&v, "$", &mut paths);
        let mut changed = v.clone();
        prop_assert!(shift_number(&mut changed, &mut pick.index(paths.len()), tolerance * fraction));
        prop_assert_eq!(diffs(&v, &changed, tolerance), Vec::<String>::new());
    }
}

#[test]
fn the_mutation_helpers_do_what_they_say() {
    assert_eq!(apply_edit("abc", &Edit::Insert(1, 'x')), "axbc");
    assert_eq!(apply_edit("abc", &Edit::Delete(4)), "ac");
    assert_eq!(apply_edit("", &Edit::Delete(4)), "");
    assert_eq!(apply_edit("abc", &Edit::Truncate(2)), "ab");
    let mut ev = valid_event();
    mutate(&mut ev, &["detail", "image-tag"], &Mutation::Remove);
    assert!(ev["detail"].get("image-tag").is_none());
    let mut paths = Vec::new();
    number_paths(&json!({"a": [1, {"b": 2.5}], "c": "x"}), "$", &mut paths);
    assert_eq!(paths, ["$.a[0]", "$.a[1].b"]);
}
