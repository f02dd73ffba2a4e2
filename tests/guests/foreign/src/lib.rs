//! A component that imports an interface mtask-host does not provide, for
//! the CLI's error test.

wit_bindgen::generate!({
    inline: "
        package mtask:foreign;
        interface missing { nothing: func(); }
        world foreign {
            import missing;
            export entries: func() -> list<string>;
            export run: func(entry: string, payload: list<u8>) -> result<list<u8>, string>;
        }
    ",
});

struct Foreign;

impl Guest for Foreign {
    fn entries() -> Vec<String> {
        vec!["main".into()]
    }

    fn run(_entry: String, _payload: Vec<u8>) -> Result<Vec<u8>, String> {
        mtask::foreign::missing::nothing();
        Ok(Vec::new())
    }
}

export!(Foreign);
