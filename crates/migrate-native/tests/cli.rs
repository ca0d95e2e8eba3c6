//! CLI cases as files: each `cmd/*.toml` runs `migrate-native` and checks its output and exit code.

#[test]
fn cli_cases() {
    trycmd::TestCases::new().case("tests/cmd/*.toml");
}
