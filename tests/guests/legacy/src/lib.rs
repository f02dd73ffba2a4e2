//! A component built against `mtask:task@0.1.0` (the WIT of `wit/` kept
//! here as it was), which hosts of later 0.1.x versions must still run: it
//! spawns a child, hands it a queue and joins it, with nothing of 0.1.1.

wit_bindgen::generate!({ path: "wit", world: "task" });

use mtask::task::queues::{Item, Queue};
use mtask::task::tasks::{self, Handle};

struct Legacy;

impl Guest for Legacy {
    fn entries() -> Vec<String> {
        vec!["main".into(), "child".into()]
    }

    fn run(entry: String, payload: Vec<u8>) -> Result<Vec<u8>, String> {
        match entry.as_str() {
            "main" => {
                let queue = Queue::create(0, &[]).map_err(|e| format!("{e:?}"))?;
                let item = Item {
                    tag: None,
                    data: b"from 0.1.0".to_vec(),
                };
                queue.put(&item, None).map_err(|e| format!("{e:?}"))?;
                let handed = vec![Handle::Queue(queue)];
                let child =
                    tasks::spawn("child", &payload, handed).map_err(|e| format!("{e:?}"))?;
                let got = child.join(None).map_err(|e| format!("{e:?}"))?;
                let text = got.map_err(|e| format!("{e:?}"))?;
                println!("child said: {}", String::from_utf8_lossy(&text));
                Ok(Vec::new())
            }
            "child" => {
                let Some(Handle::Queue(queue)) = tasks::take_handles().into_iter().next() else {
                    return Err("no queue handed".into());
                };
                let item = queue.get(None).map_err(|e| format!("{e:?}"))?;
                Ok(item.data)
            }
            other => Err(format!("no entry {other}")),
        }
    }
}

export!(Legacy);
