//! Any bytes: the trace and data-set parsers return a value or an error, never panic, and a
//! parsed trace survives emit → parse unchanged and builds a data set or names why not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use precopy_core::dataset::GroupsFile;
use precopy_core::trace::Trace;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(trace) = Trace::parse(text) {
        let again = Trace::parse(&trace.to_jsonl()).expect("emitted traces parse");
        assert_eq!(again, trace);
        let _ = trace.dataset();
    }
    if let Ok(groups) = GroupsFile::parse(text) {
        // Small scale: a fuzzed count must not make this allocate gigabytes.
        let _ = groups.dataset(1e-6);
    }
});
