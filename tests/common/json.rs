//! A small strict JSON parser for tests that check a program's JSON output: the text must be
//! one complete JSON value (anything else panics with the position), and numbers keep their text
//! so that 64-bit integers compare exactly.
#![allow(dead_code)]

/// A JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    /// The number's text.
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    /// Member `k` of an object (panics if this is not an object or has no such member).
    pub fn get(&self, k: &str) -> &J {
        match self {
            J::Obj(m) => &m.iter().find(|(n, _)| n == k).unwrap_or_else(|| panic!("no member {k:?} in {self:?}")).1,
            _ => panic!("not an object: {self:?}"),
        }
    }
    /// Element `i` of an array.
    pub fn at(&self, i: usize) -> &J {
        match self {
            J::Arr(v) => &v[i],
            _ => panic!("not an array: {self:?}"),
        }
    }
    /// The value as an unsigned integer, `None` for `null`.
    pub fn u64(&self) -> Option<u64> {
        match self {
            J::Null => None,
            J::Num(n) => Some(n.parse().unwrap_or_else(|_| panic!("not an unsigned integer: {n}"))),
            _ => panic!("not a number: {self:?}"),
        }
    }
    /// The value as a string, `None` for `null`.
    pub fn str(&self) -> Option<&str> {
        match self {
            J::Null => None,
            J::Str(s) => Some(s),
            _ => panic!("not a string: {self:?}"),
        }
    }
    /// The value as a boolean.
    pub fn bool(&self) -> bool {
        match self {
            J::Bool(b) => *b,
            _ => panic!("not a boolean: {self:?}"),
        }
    }
}

/// Parses `text`, which must hold exactly one JSON value (surrounding whitespace allowed).
pub fn parse(text: &str) -> J {
    let mut p = Parser { b: text.as_bytes(), at: 0 };
    let v = p.value();
    p.ws();
    assert!(p.at == p.b.len(), "trailing text at byte {} of {text:?}", p.at);
    v
}

struct Parser<'a> {
    b: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.at < self.b.len() && b" \t\r\n".contains(&self.b[self.at]) {
            self.at += 1;
        }
    }
    fn peek(&self) -> u8 {
        *self.b.get(self.at).unwrap_or_else(|| panic!("JSON ends early at byte {}", self.at))
    }
    fn eat(&mut self, c: u8) {
        assert_eq!(self.peek() as char, c as char, "at byte {}", self.at);
        self.at += 1;
    }
    fn lit(&mut self, word: &str, v: J) -> J {
        assert!(self.b[self.at..].starts_with(word.as_bytes()), "bad literal at byte {}", self.at);
        self.at += word.len();
        v
    }
    fn value(&mut self) -> J {
        self.ws();
        match self.peek() {
            b'n' => self.lit("null", J::Null),
            b't' => self.lit("true", J::Bool(true)),
            b'f' => self.lit("false", J::Bool(false)),
            b'"' => J::Str(self.string()),
            b'[' => {
                self.eat(b'[');
                let mut v = Vec::new();
                self.ws();
                if self.peek() == b']' {
                    self.at += 1;
                    return J::Arr(v);
                }
                loop {
                    v.push(self.value());
                    self.ws();
                    if self.peek() == b',' {
                        self.at += 1;
                    } else {
                        self.eat(b']');
                        return J::Arr(v);
                    }
                }
            }
            b'{' => {
                self.eat(b'{');
                let mut m = Vec::new();
                self.ws();
                if self.peek() == b'}' {
                    self.at += 1;
                    return J::Obj(m);
                }
                loop {
                    self.ws();
                    let k = self.string();
                    self.ws();
                    self.eat(b':');
                    let v = self.value();
                    assert!(!m.iter().any(|(n, _)| *n == k), "duplicate key {k:?}");
                    m.push((k, v));
                    self.ws();
                    if self.peek() == b',' {
                        self.at += 1;
                    } else {
                        self.eat(b'}');
                        return J::Obj(m);
                    }
                }
            }
            _ => {
                let start = self.at;
                while self.at < self.b.len() && b"-+.eE0123456789".contains(&self.b[self.at]) {
                    self.at += 1;
                }
                let t = std::str::from_utf8(&self.b[start..self.at]).unwrap();
                assert!(t.parse::<f64>().is_ok(), "bad number {t:?} at byte {start}");
                J::Num(t.to_string())
            }
        }
    }
    fn string(&mut self) -> String {
        self.eat(b'"');
        let mut out = Vec::new();
        loop {
            let c = self.peek();
            self.at += 1;
            match c {
                b'"' => return String::from_utf8(out).expect("UTF-8 string"),
                b'\\' => {
                    let e = self.peek();
                    self.at += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = std::str::from_utf8(&self.b[self.at..self.at + 4]).unwrap();
                            let ch = char::from_u32(u32::from_str_radix(hex, 16).unwrap()).expect("a BMP character");
                            out.extend_from_slice(ch.to_string().as_bytes());
                            self.at += 4;
                        }
                        _ => panic!("bad escape at byte {}", self.at),
                    }
                }
                c if c < 0x20 => panic!("control character in a string at byte {}", self.at),
                c => out.push(c),
            }
        }
    }
}
