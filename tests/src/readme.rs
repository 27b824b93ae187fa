//! What the README tells a user to type, read from the README itself, so a test runs it as written and a
//! README that drifts from the product fails.

use crate::fixture;

fn readme() -> String {
    std::fs::read_to_string(fixture::workspace_root().join("README.md")).expect("README.md is readable")
}

/// A command the README shows in backticks, starting with `prefix`, as one line (a command the README wraps
/// over two lines is found too).
pub fn command(prefix: &str) -> String {
    let readme = readme().split_whitespace().collect::<Vec<_>>().join(" ");
    let start = readme.find(&format!("`{prefix}")).unwrap_or_else(|| panic!("the README shows `{prefix} ...`"));
    let rest = &readme[start + 1..];
    rest[..rest.find('`').expect("a closing backtick")].to_string()
}

/// A row of the README's operator table (`| `deployctl usage` | `execution input` | what it does |`), by
/// the command's name: (usage, execution input; empty for a row whose command only reads).
pub fn operator_row(name: &str) -> (String, String) {
    let readme = readme();
    let row = readme
        .lines()
        .find(|l| l.starts_with(&format!("| `{name} ")))
        .unwrap_or_else(|| panic!("the README's operator table has no row for `{name}`"));
    let quoted: Vec<&str> = row.split('`').skip(1).step_by(2).collect();
    let input = quoted.iter().find(|q| q.starts_with('{')).copied().unwrap_or_default();
    (quoted[0].to_string(), input.to_string())
}

/// The `deployctl` arguments for the README's usage of `name` (`promote <fn> [--reason]`), with `<fn>` the
/// function and each flag the README shows given its value from `values` (`--to N` takes `N`'s). A flag the
/// README shows that `values` does not fill is left out, as an optional one is; a value for a flag the README
/// does not show fails, so a test cannot pass flags the README never told anyone about.
pub fn deployctl_args(name: &str, function: &str, values: &[(&str, &str)]) -> Vec<String> {
    let (usage, _) = operator_row(name);
    let tokens: Vec<String> =
        usage.split_whitespace().map(|t| t.trim_matches(|c| c == '[' || c == ']').to_string()).collect();
    for (flag, _) in values {
        assert!(tokens.iter().any(|t| t == flag), "the README's `{usage}` shows no {flag}");
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        if t == "<fn>" {
            out.push(function.to_string());
        } else if t.starts_with("--") {
            // The flag's placeholder, if the README shows one (`--to N`), is replaced by the value.
            let placeholder = tokens.get(i + 1).is_some_and(|n| !n.starts_with("--") && n != "<fn>");
            if let Some((_, v)) = values.iter().find(|(f, _)| f == t) {
                out.extend([t.clone(), v.to_string()]);
            }
            if placeholder {
                i += 1;
            }
        } else {
            out.push(t.clone());
        }
        i += 1;
    }
    out
}

/// The README's execution input for `name`, with `<fn>` the function and `"..."` the reason given.
pub fn execution_input(name: &str, function: &str, reason: &str) -> serde_json::Value {
    let (_, input) = operator_row(name);
    let filled = input.replace("<fn>", function).replace("\"...\"", &serde_json::to_string(reason).unwrap());
    serde_json::from_str(&filled).unwrap_or_else(|e| panic!("the README's `{name}` input is not JSON ({e}): {input}"))
}

/// The `deployctl target ...` commands of the README's code block, one per command (`list | show <function>`
/// is two), without `deployctl` and the comments: e.g. `["target", "validate", "spec.json"]`.
pub fn target_commands() -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in readme().lines().filter(|l| l.starts_with("deployctl target ")) {
        let line = line.split('#').next().unwrap_or_default().trim_start_matches("deployctl target ");
        for alternative in line.split(" | ") {
            let words = alternative.split_whitespace().map(str::to_string);
            out.push(std::iter::once("target".to_string()).chain(words).collect());
        }
    }
    out
}
