//! The README's library example is the code of `examples/readme_library.rs` (which every build of
//! the examples compiles): every line of the README's `rust` block appears there, in order.

fn readme_block() -> Vec<String> {
    let readme = include_str!("../README.md");
    let section = readme
        .split("## Using the feed as a library")
        .nth(1)
        .expect("the README has the library section");
    let block = section
        .split("```rust")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a rust block in it");
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_readme_library_example_is_the_compiled_example() {
    let example = include_str!("../examples/readme_library.rs");
    let lines: Vec<&str> = example.lines().map(str::trim).collect();
    let block = readme_block();
    assert!(block.len() >= 10, "{block:?}");
    let mut at = 0;
    for want in &block {
        match lines[at..].iter().position(|l| l == want) {
            Some(i) => at += i + 1,
            None => panic!(
                "README line {want:?} is not in examples/readme_library.rs (in order): update one of them"
            ),
        }
    }
}
