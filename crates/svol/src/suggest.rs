//! "Did you mean …?" for a volume name that does not exist: the closest
//! name of the workspace's volumes, by edit distance, when one is close.

use anyhow::Result;
use svol_sdk::ClientError;

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The name among `names` closest to `typed`, if it is close enough to be
/// a typo (at most 2 edits, and fewer than half its length).
pub(crate) fn closest<'a>(typed: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = 2.min(typed.chars().count().saturating_sub(1) / 2).max(1);
    names
        .filter(|n| *n != typed)
        .map(|n| (distance(typed, n), n))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, n)| (*d, *n))
        .map(|(_, n)| n)
}

/// The volume an error says was not found (`volume NAME: not found`).
fn missing_volume(e: &anyhow::Error) -> Option<String> {
    e.chain()
        .find_map(|c| match c.downcast_ref::<ClientError>() {
            Some(ClientError::NotFound(m)) => {
                let name = m.strip_prefix("volume ")?;
                let name = name.split([':', ' ', '@']).next()?;
                (!name.is_empty()).then(|| name.to_string())
            }
            _ => None,
        })
}

/// Adds "did you mean" to an error about a missing volume.
pub(crate) async fn volume_typo(
    r: Result<i32>,
    server: &Option<String>,
    token: &Option<String>,
) -> Result<i32> {
    let Err(e) = r else { return r };
    let Some(typed) = missing_volume(&e) else {
        return Err(e);
    };
    let Ok(c) = crate::connect(server, token).await else {
        return Err(e);
    };
    let Ok(volumes) = c.list_volumes().await else {
        return Err(e);
    };
    match closest(&typed, volumes.iter().map(|v| v.name.as_str())) {
        Some(n) => Err(anyhow::anyhow!(
            "{}; did you mean {n}?",
            crate::describe(&e)
        )),
        None => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_name_and_strangers_do_not() {
        let names = ["model-cache", "datasets", "scratch"];
        assert_eq!(
            closest("modle-cache", names.into_iter()),
            Some("model-cache")
        );
        assert_eq!(closest("dataset", names.into_iter()), Some("datasets"));
        assert_eq!(closest("weights", names.into_iter()), None);
        assert_eq!(closest("ab", ["xy"].into_iter()), None);
        assert_eq!(distance("abc", "acb"), 1);
    }
}
