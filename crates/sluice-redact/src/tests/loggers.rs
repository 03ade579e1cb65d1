//! The default allow list against the logging libraries: README's table
//! is the code's table, and what the real libraries print passes.

use crate::policy::LOGGER_FIELDS;

#[test]
fn the_readme_table_is_the_default_list() {
    let readme = include_str!("../../../../README.md");
    let section = readme
        .split("### Default allow list: logging libraries")
        .nth(1)
        .expect("README has the section");
    let rows: Vec<(String, Vec<String>)> = section
        .lines()
        .skip_while(|l| !l.starts_with("| Library"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let fields = cells[2]
                .split_whitespace()
                .map(|f| f.trim_matches('`').to_string())
                .collect();
            (cells[1].to_string(), fields)
        })
        .collect();
    let code: Vec<(String, Vec<String>)> = LOGGER_FIELDS
        .iter()
        .map(|(lib, _, fields)| (lib.to_string(), fields.iter().map(|f| f.to_string()).collect()))
        .collect();
    assert_eq!(rows, code);
}
