//! Finding the README's programs and the lines that build and run them (see the test's
//! module docs for the conventions), and the tests of that parsing.

/// The info-string word that marks a C or Rust block as not a complete program.
const FRAGMENT: &str = "fragment";

/// A fenced code block.
struct Block {
    /// Line of the opening fence (1-based).
    line: usize,
    /// The info string's words (split at commas and spaces).
    info: Vec<String>,
    body: String,
}

impl Block {
    /// The block's language; rustdoc's attributes alone (`no_run`, `ignore`, …) mean Rust.
    fn lang(&self) -> &str {
        match self.info.first().map(String::as_str) {
            None => "",
            Some("ignore" | "no_run" | "should_panic" | "compile_fail" | "test_harness") => "rust",
            Some(e) if e.starts_with("edition") => "rust",
            Some(l) => l,
        }
    }
    fn is_program(&self) -> bool {
        matches!(self.lang(), "c" | "rust")
    }
}

fn blocks(md: &str) -> Result<Vec<Block>, String> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (n, l) in md.lines().enumerate() {
        let fence = l.trim_start().strip_prefix("```");
        match (open.as_mut(), fence) {
            (None, Some(info)) => {
                let info = info.split([',', ' ', '\t']).filter(|w| !w.is_empty()).map(str::to_string).collect();
                open = Some(Block { line: n + 1, info, body: String::new() });
            }
            (Some(_), Some(rest)) if rest.trim().is_empty() => out.extend(open.take()),
            (Some(b), _) => {
                b.body.push_str(l);
                b.body.push('\n');
            }
            (None, None) => {}
        }
    }
    match open {
        Some(b) => Err(format!("README.md:{}: the code block is never closed", b.line)),
        None => Ok(out),
    }
}

/// How an example is built.
#[derive(Debug)]
pub enum Build {
    /// The README's `cc` line, with the source file and output names it uses.
    C { cc: String, source: String, output: String },
    /// The README's `crthreads = { path = "…" }` dependency line.
    Rust { dependency: String },
}

/// A program from the README with the lines that build and run it.
pub struct Example {
    pub line: usize,
    pub code: String,
    pub build: Build,
    /// The line that runs it (`./myprog`, `cargo run --release`).
    pub run: String,
}

impl Example {
    pub fn name(&self) -> String {
        let lang = match self.build {
            Build::C { .. } => "c",
            Build::Rust { .. } => "rust",
        };
        format!("README.md:{} ({lang})", self.line)
    }
}

/// A shell line without its comment.
fn shell_line(l: &str) -> &str {
    let end = l.char_indices().find(|&(i, c)| c == '#' && (i == 0 || l[..i].ends_with([' ', '\t'])));
    l[..end.map_or(l.len(), |(i, _)| i)].trim()
}

/// The programs of `md` with their instructions, and the lines of the fragments left out.
pub fn examples(md: &str) -> Result<(Vec<Example>, Vec<usize>), String> {
    let blocks = blocks(md)?;
    let mut out = Vec::new();
    let mut fragments = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let at = format!("README.md:{}", b.line);
        if b.lang().is_empty() {
            return Err(format!(
                "{at}: a code block without a language (rustdoc compiles it as Rust): label it `text`, `sh`, `c`, `rust`…"
            ));
        }
        if !b.is_program() {
            continue;
        }
        if b.info.iter().any(|w| w == FRAGMENT) {
            fragments.push(b.line);
            continue;
        }
        // Its instructions: the blocks after it up to the next program (and, for the
        // dependency line, those since the previous one).
        let following: Vec<&Block> = blocks[i + 1..].iter().take_while(|n| !n.is_program()).collect();
        let preceding = blocks[..i].iter().rev().take_while(|n| !n.is_program());
        let sh = following.iter().find(|n| n.lang() == "sh").ok_or_else(|| {
            format!("{at}: no `sh` block after this {} program says how to build and run it", b.lang())
        })?;
        let lines: Vec<&str> = sh.body.lines().map(shell_line).filter(|l| !l.is_empty()).collect();
        let (build, run) = if b.lang() == "c" {
            let cc = lines.iter().position(|l| l.starts_with("cc ")).ok_or_else(|| {
                format!("{at}: the `sh` block at line {} has no `cc …` line that builds this program", sh.line)
            })?;
            if !lines[..cc].contains(&"make lib") {
                return Err(format!(
                    "{at}: the `sh` block at line {} does not build the library (`make lib`) first",
                    sh.line
                ));
            }
            let words: Vec<&str> = lines[cc].split_whitespace().collect();
            let sources: Vec<&str> = words.iter().copied().filter(|w| w.ends_with(".c")).collect();
            let [source] = sources[..] else {
                return Err(format!("{at}: the `cc` line must name one `.c` file, not {sources:?}"));
            };
            let output =
                words.iter().position(|&w| w == "-o").and_then(|o| words.get(o + 1)).ok_or_else(|| {
                    format!("{at}: the `cc` line must name its output with `-o <name>`: {}", lines[cc])
                })?;
            let run = lines
                .iter()
                .find(|l| l.split_whitespace().next() == Some(format!("./{output}").as_str()))
                .ok_or_else(|| {
                    format!("{at}: the `sh` block at line {} has no `./{output}` line that runs the program", sh.line)
                })?;
            let build = Build::C { cc: lines[cc].to_string(), source: source.to_string(), output: output.to_string() };
            (build, run.to_string())
        } else {
            let dependency = preceding
                .chain(following.iter().copied())
                .filter(|n| n.lang() == "toml")
                .flat_map(|n| n.body.lines())
                .find(|l| l.trim_start().starts_with("crthreads") && l.contains("path = \""))
                .ok_or_else(|| format!("{at}: no `toml` block next to this Rust program gives a `crthreads = {{ path = \"…\" }}` dependency line"))?;
            let run = lines.iter().find(|l| l.starts_with("cargo run")).ok_or_else(|| {
                format!("{at}: the `sh` block at line {} has no `cargo run …` line that runs the program", sh.line)
            })?;
            (Build::Rust { dependency: dependency.trim().to_string() }, run.to_string())
        };
        out.push(Example { line: b.line, code: b.body.clone(), build, run });
    }
    Ok((out, fragments))
}

pub fn blocks_and_instructions_are_found() {
    let md = "text\n\n```sh\nmake demo\n```\n\n```c\nint main(void) { return 0; }\n```\n\n\
              ```sh\nmake lib\ncc -O2 -I inc a.c -L lib -lcrthreads -o a # build\n./a   # run\n```\n\n\
              ```c,fragment\nx = 1;\n```\n\n```toml\n[dependencies]\ncrthreads = { path = \"/x\" }\n```\n\n\
              ```rust,no_run\nfn main() {}\n```\n\n```sh\ncargo run --release # go\n```\n\n```text\na -> b\n```\n";
    let (ex, fragments) = examples(md).unwrap();
    assert_eq!(fragments, vec![17], "the fragment block");
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0].line, 7);
    assert_eq!(ex[0].code, "int main(void) { return 0; }\n");
    match &ex[0].build {
        Build::C { cc, source, output } => {
            assert_eq!(cc, "cc -O2 -I inc a.c -L lib -lcrthreads -o a");
            assert_eq!((source.as_str(), output.as_str()), ("a.c", "a"));
        }
        b => panic!("the C block is built as {b:?}"),
    }
    assert_eq!(ex[0].run, "./a");
    assert_eq!(ex[1].line, 26);
    match &ex[1].build {
        Build::Rust { dependency } => assert_eq!(dependency, "crthreads = { path = \"/x\" }"),
        b => panic!("the Rust block is built as {b:?}"),
    }
    assert_eq!(ex[1].run, "cargo run --release");
    assert_eq!(shell_line("cc -Wl,-rpath,\"$PWD/x\" -o a#b # c"), "cc -Wl,-rpath,\"$PWD/x\" -o a#b");
}

pub fn unlabelled_or_uninstructed_blocks_fail() {
    for (md, needle) in [
        ("```\nint x;\n```\n", "without a language"),
        ("```c\nint main(void) { return 0; }\n```\n", "no `sh` block"),
        ("```c\nint main(void) { return 0; }\n```\n```sh\ncc a.c -o a\n./a\n```\n", "`make lib`"),
        ("```c\nint main(void) { return 0; }\n```\n```sh\nmake lib\ncc a.c -o a\n```\n", "no `./a` line"),
        ("```c\nint main(void) { return 0; }\n```\n```sh\nmake lib\ncc a.c b.c -o a\n./a\n```\n", "one `.c` file"),
        ("```rust\nfn main() {}\n```\n```sh\ncargo run\n```\n", "dependency line"),
        ("```no_run\nfn main() {}\n```\n```toml\ncrthreads = { path = \"/x\" }\n```\n", "no `sh` block"),
        (
            "```rust\nfn main() {}\n```\n```toml\ncrthreads = { path = \"/x\" }\n```\n```sh\nCRTHREADS_DIR=/d cargo run\n```\n",
            "no `cargo run",
        ),
        ("```c\nint x;\n", "never closed"),
    ] {
        match examples(md) {
            Ok((ex, _)) => panic!("accepted {} programs from {md:?}", ex.len()),
            Err(e) => assert!(e.contains(needle), "{md:?}: the error `{e}` lacks `{needle}`"),
        }
    }
}
