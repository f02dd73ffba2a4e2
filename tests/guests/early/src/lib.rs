//! A component that calls the scheduler while it is only being asked for
//! its entries, before any task runs: the host must refuse it cleanly.

wit_bindgen::generate!({ path: "../../../wit", world: "task" });

struct Early;

impl Guest for Early {
    fn entries() -> Vec<String> {
        mtask::task::tasks::yield_now();
        vec!["main".into()]
    }

    // What a host of WIT 0.1.2 asks for.
    fn entry_types() -> Vec<EntryType> {
        mtask::task::tasks::yield_now();
        vec![EntryType {
            name: "main".into(),
            arg: String::new(),
            result: String::new(),
        }]
    }

    fn run(_entry: String, _payload: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }

    fn run_json(_entry: String, _arg: String) -> Result<String, String> {
        Ok("null".into())
    }
}

export!(Early);
