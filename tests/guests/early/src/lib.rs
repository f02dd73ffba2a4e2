//! A component that calls the scheduler while it is only being asked for
//! its entries, before any task runs: the host must refuse it cleanly.

wit_bindgen::generate!({ path: "../../../wit", world: "task" });

struct Early;

impl Guest for Early {
    fn entries() -> Vec<String> {
        mtask::task::tasks::yield_now();
        vec!["main".into()]
    }

    fn run(_entry: String, _payload: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }
}

export!(Early);
