// sample.rs — fixture for the indexer's symbol tests (not built).
use std::collections::HashMap;

pub struct Counter {
    counts: HashMap<String, usize>,
}

pub enum Mode {
    Fast,
    Slow,
}

pub trait Describe {
    fn describe(&self) -> String;
}

impl Counter {
    pub fn new() -> Self {
        Counter { counts: HashMap::new() }
    }

    pub fn add(&mut self, word: &str) {
        *self.counts.entry(word.to_string()).or_insert(0) += 1;
    }
}

impl Describe for Counter {
    fn describe(&self) -> String {
        format!("{} words", self.counts.len())
    }
}

pub fn count_words(text: &str) -> Counter {
    let mut c = Counter::new();
    for w in text.split_whitespace() {
        c.add(w);
    }
    c
}

mod inner {
    pub fn helper() -> u32 {
        42
    }
}
