//! The only place the CLI writes to stdout/stderr, so output stays consistent and testable.

use std::io::Write;

/// Writes one line to stdout. A closed pipe (`bylaw … | head`) is not an error worth a panic.
pub fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

/// Writes text to stdout as is.
pub fn text(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
}

/// Writes an error with its chain of causes to stderr.
pub fn error(err: &anyhow::Error) {
    let mut out = std::io::stderr().lock();
    let _ = writeln!(out, "error: {err}");
    for cause in err.chain().skip(1) {
        let _ = writeln!(out, "  caused by: {cause}");
    }
}

/// Prints a value as pretty JSON.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    line(&text);
    Ok(())
}

/// Prints `bylaw test` results as a table per suite and a closing summary.
pub fn test_table(results: &[crate::test_cmd::SuiteResult], fail_only: bool, detailed: bool) {
    for suite in results {
        line(&format!(
            "Test {} ({})",
            if suite.name.is_empty() {
                "<unnamed>"
            } else {
                &suite.name
            },
            suite.path.display()
        ));
        if let Some(err) = &suite.error {
            line(&format!("  ERROR: {err}"));
            continue;
        }
        let rows: Vec<_> = suite
            .rows
            .iter()
            .filter(|r| !fail_only || !r.passed)
            .collect();
        if rows.is_empty() {
            line("  all rows passed");
            continue;
        }
        let mut table = vec![vec![
            "ID".to_owned(),
            "POLICY".to_owned(),
            "RULE".to_owned(),
            "RESOURCE".to_owned(),
            "RESULT".to_owned(),
            "REASON".to_owned(),
        ]];
        if detailed {
            if let Some(header) = table.first_mut() {
                header.push("MESSAGE".to_owned());
            }
        }
        for (i, row) in rows.iter().enumerate() {
            let mut cells = vec![
                (i + 1).to_string(),
                row.policy.clone(),
                row.rule.clone(),
                format!("{}/{}", row.kind, row.resource),
                if row.passed { "Pass" } else { "Fail" }.to_owned(),
                row.reason.clone(),
            ];
            if detailed {
                cells.push(row.message.clone());
            }
            table.push(cells);
        }
        print_table(&table, "  ");
    }
    let t = crate::test_cmd::totals(results);
    line("");
    line(&format!(
        "Test summary: {} suites passed, {} suites failed; {} rows passed, {} rows failed",
        t.suites_passed, t.suites_failed, t.rows_passed, t.rows_failed
    ));
}

/// Prints rows as aligned columns.
pub fn print_table(rows: &[Vec<String>], indent: &str) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut text = String::from(indent);
        for (c, cell) in row.iter().enumerate() {
            let width = widths.get(c).copied().unwrap_or(0);
            if c + 1 == row.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        line(text.trim_end());
    }
}

/// JUnit XML for CI systems: one test suite per file, one test case per row.
pub fn junit(results: &[crate::test_cmd::SuiteResult]) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let t = crate::test_cmd::totals(results);
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!(
        "<testsuites tests=\"{}\" failures=\"{}\">\n",
        t.rows_passed + t.rows_failed,
        t.rows_failed
    ));
    for suite in results {
        let failures =
            suite.rows.iter().filter(|r| !r.passed).count() + usize::from(suite.error.is_some());
        xml.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\">\n",
            esc(&suite.path.display().to_string()),
            suite.rows.len(),
            failures
        ));
        if let Some(err) = &suite.error {
            xml.push_str(&format!(
                "    <testcase name=\"load\"><failure message=\"{}\"/></testcase>\n",
                esc(err)
            ));
        }
        for row in &suite.rows {
            let name = format!("{}/{}/{}/{}", row.policy, row.rule, row.kind, row.resource);
            if row.passed {
                xml.push_str(&format!("    <testcase name=\"{}\"/>\n", esc(&name)));
            } else {
                xml.push_str(&format!(
                    "    <testcase name=\"{}\"><failure message=\"{}\"/></testcase>\n",
                    esc(&name),
                    esc(&row.reason)
                ));
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// A warning on stderr.
pub fn warn(text: &str) {
    let mut out = std::io::stderr().lock();
    let _ = writeln!(out, "warning: {text}");
}
