//! "Did you mean" hints for unknown configuration keys: a typo in a setting that turns
//! scrubbing on must never load silently, and the error should name the likely key.

/// `"; did you mean \"<candidate>\"?"` for the candidate closest to `key`, or an empty
/// string when none is close (at most a third of the key's length in edits, rounded up,
/// ignoring case, `_` and `-`).
pub fn did_you_mean(key: &str, candidates: &[&str]) -> String {
    let norm = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let wanted = norm(key);
    let limit = wanted.len().div_ceil(3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(&wanted, &norm(c)), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("; did you mean {c:?}?"))
        .unwrap_or_default()
}

/// Optimal string alignment distance: insertions, deletions, substitutions and
/// transpositions of two neighbours each cost one.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[n][m]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_the_closest_key() {
        let keys = ["coverage", "attachments", "forwardUnknownItems"];
        assert_eq!(
            did_you_mean("coverge", &keys),
            "; did you mean \"coverage\"?"
        );
        assert_eq!(
            did_you_mean("attachment", &keys),
            "; did you mean \"attachments\"?"
        );
        assert_eq!(
            did_you_mean("forward_unknown_items", &keys),
            "; did you mean \"forwardUnknownItems\"?"
        );
        assert_eq!(
            did_you_mean("covreage", &keys),
            "; did you mean \"coverage\"?"
        );
    }

    #[test]
    fn unrelated_keys_get_no_hint() {
        let keys = ["coverage", "attachments"];
        assert_eq!(did_you_mean("hello", &keys), "");
        assert_eq!(did_you_mean("x", &keys), "");
    }
}
