//! Tables as every command prints them: a header, columns aligned with two
//! spaces, the last column left ragged.

/// Prints `rows` under `head`, aligned.
pub(crate) fn print<const N: usize>(head: &[&str; N], rows: &[[String; N]]) {
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                out.push_str(c);
            } else {
                out.push_str(c);
                out.push_str(&" ".repeat(width[i] - c.chars().count() + 2));
            }
        }
        println!("{}", out.trim_end());
    };
    line(head.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// 1.5 MiB, 200 B: a size as people read it.
pub(crate) fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Now, in ms since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// "3m ago", "in 6d 23h": a time (ms since the epoch) next to now.
pub(crate) fn relative_ms(ms: i64) -> String {
    let now = now_ms();
    let d = (ms - now).unsigned_abs() / 1000;
    let span = match d {
        0..=59 => format!("{d}s"),
        60..=3599 => format!("{}m", d / 60),
        3600..=86_399 => format!("{}h {}m", d / 3600, d % 3600 / 60),
        _ => format!("{}d {}h", d / 86_400, d % 86_400 / 3600),
    };
    if ms <= now {
        format!("{span} ago")
    } else {
        format!("in {span}")
    }
}

/// A time in seconds since the epoch, relative to now ("-" for none).
pub(crate) fn ago(unix: i64) -> String {
    if unix <= 0 {
        return "-".into();
    }
    relative_ms(unix.saturating_mul(1000))
}

/// `s` cut to `max` characters with an ellipsis (long command lines).
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
