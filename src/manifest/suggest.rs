//! Did-you-mean suggestions for misspelt names (fields, services, secrets,
//! template variables), by Levenshtein edit distance.

/// The edit distance between `a` and `b` in characters: insertions, deletions,
/// substitutions and swaps of two neighbours (optimal string alignment).
pub fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between a[..i] and b[..j].
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j - 1] + cost)
                .min(rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

/// How far a candidate may be from the word to be suggested: 2 edits, 1 for
/// short words (so `a` does not suggest `b`), and case-only differences always.
fn max_distance(word: &str) -> usize {
    if word.chars().count() <= 3 {
        1
    } else {
        2
    }
}

/// Candidates close to `word`, nearest first (ties in alphabetical order).
pub fn close_matches<'a, I>(word: &str, candidates: I) -> Vec<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let lower = word.to_lowercase();
    let mut found: Vec<(usize, &'a str)> = candidates
        .into_iter()
        .filter(|c| *c != word)
        .filter_map(|c| {
            let d = levenshtein(&lower, &c.to_lowercase());
            (d <= max_distance(word)).then_some((d, c))
        })
        .collect();
    found.sort();
    found.dedup();
    found.into_iter().map(|(_, c)| c).collect()
}

/// The single best candidate for `word`, if one is close enough.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    close_matches(word, candidates).into_iter().next()
}

/// A hint sentence: "did you mean `x`?", or the list of valid names when
/// nothing is close (`None` when there are no names at all).
pub fn hint<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let all: Vec<&'a str> = candidates.into_iter().collect();
    if let Some(best) = did_you_mean(word, all.iter().copied()) {
        return Some(format!("did you mean `{best}`?"));
    }
    if all.is_empty() {
        return None;
    }
    let mut sorted = all;
    sorted.sort_unstable();
    sorted.dedup();
    let list: Vec<String> = sorted.iter().map(|c| format!("`{c}`")).collect();
    Some(format!("expected one of {}", list.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(levenshtein("", ""), 0);
        assert_eq!(levenshtein("abc", ""), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("comand", "command"), 1);
        assert_eq!(levenshtein("pwd", "pdw"), 1);
        assert_eq!(levenshtein("ab", "ba"), 1);
    }

    #[test]
    fn suggests_the_nearest() {
        let fields = ["name", "kind", "from", "to", "pwd", "command", "copy"];
        assert_eq!(did_you_mean("comand", fields), Some("command"));
        assert_eq!(did_you_mean("cpy", fields), Some("copy"));
        assert_eq!(did_you_mean("Command", fields), Some("command"));
        assert_eq!(did_you_mean("entrypoint", fields), None);
    }

    #[test]
    fn short_words_need_a_close_match() {
        assert_eq!(did_you_mean("ab", ["xy", "cd"]), None);
        assert_eq!(did_you_mean("to", ["tp"]), Some("tp"));
    }

    #[test]
    fn hint_lists_names_when_nothing_is_close() {
        assert_eq!(
            hint("zzzzzz", ["b", "a"]).as_deref(),
            Some("expected one of `a`, `b`")
        );
        assert_eq!(
            hint("passwrd", ["password"]).as_deref(),
            Some("did you mean `password`?")
        );
        assert_eq!(hint("x", std::iter::empty()), None);
    }
}
