//! The source's own shape, checked on the host (no QEMU): the kernel's
//! top-level modules form layers that only look down (issue 16 item 1), and
//! no function outside tests is longer than 100 lines (item 4).
//!
//! The layers are declared once, in [`LAYERS`]; `kernel/src/main.rs` and
//! `docs/design.md` describe them. A module may name modules of its own layer
//! or below; the graph must still have no cycle, and `arch` names nothing but
//! the hardware-free libraries under it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use syn::visit::Visit;

/// The kernel's layers, bottom first: each top-level module of
/// `kernel/src` (a file or a directory) sits in exactly one.
const LAYERS: &[(&str, &[&str])] = &[
    // Hardware-free logic: host-tested, names nothing in the kernel.
    ("lib", &["bootinfo", "cmdline", "lineedit", "time"]),
    // The CPU: descriptor tables, traps, APIC, per-CPU data, SMP start,
    // saved registers. Calls up only through tables filled at boot.
    ("arch", &["arch"]),
    // Spin locks (lock_api) and memory (frames, paging, heap).
    ("sync", &["sync", "mm"]),
    // Threads, run queues, wait queues, the blocking mutex, the tick hooks.
    ("sched", &["sched"]),
    // Devices: text output (VGA text, the framebuffer console), UART, ACPI, PCI, power, watchdog, USB glue, the
    // dump disk and writer.
    (
        "devices",
        &[
            "vga", "fb", "serial", "console", "acpi", "pci", "power", "watchdog", "usb", "dump",
        ],
    ),
    // The panic path: stop the world, report, the panic-time input, triggers.
    ("panic", &["panic"]),
    // The one command table of both consoles, and what its commands call.
    ("commands", &["command", "bench", "scenarios"]),
    // The consoles: `shell>` and the debugger (`db>`), entered from the
    // panic path through a hook registered at boot, and the debugger's gdb
    // stub on COM2, which its loop polls.
    ("consoles", &["shell", "debugger", "gdb"]),
    // Boot: the entry, `kmain`, and the wiring of every hook above.
    ("boot", &["boot"]),
];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Module path of a file under `kernel/src` (`arch/cpu.rs` -> [arch, cpu],
/// `arch/mod.rs` -> [arch], `main.rs` -> []).
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|l| l == "mod" || l == "main") {
        parts.pop();
    }
    parts
}

fn ident(t: &TokenTree) -> Option<String> {
    match t {
        TokenTree::Ident(i) => Some(i.to_string()),
        _ => None,
    }
}

fn is_colon(t: Option<&TokenTree>) -> bool {
    matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == ':')
}

/// First identifier of each comma-separated element of a `use` group.
fn group_heads(g: &TokenStream) -> Vec<String> {
    let mut heads = Vec::new();
    let mut at_start = true;
    for t in g.clone() {
        match &t {
            TokenTree::Punct(p) if p.as_char() == ',' => at_start = true,
            TokenTree::Ident(i) if at_start => {
                heads.push(i.to_string());
                at_start = false;
            }
            _ => at_start = false,
        }
    }
    heads
}

/// Every top-level module a token stream names: `crate::x`,
/// `crate::{x, y}`, `super::...` climbing to the crate root, and the
/// invocation of a macro another module defines.
fn names(
    ts: TokenStream,
    path: &[String],
    macros: &BTreeMap<String, String>,
    out: &mut BTreeSet<String>,
) {
    let tokens: Vec<TokenTree> = ts.into_iter().collect();
    for i in 0..tokens.len() {
        let t = &tokens[i];
        if let TokenTree::Group(g) = t {
            names(g.stream(), path, macros, out);
            continue;
        }
        let Some(word) = ident(t) else { continue };
        let preceded_by_path = i >= 1 && is_colon(tokens.get(i - 1));
        if word == "crate" && !preceded_by_path {
            // `crate :: x` or `crate :: { .. }`
            if is_colon(tokens.get(i + 1)) && is_colon(tokens.get(i + 2)) {
                match tokens.get(i + 3) {
                    Some(TokenTree::Ident(x)) => {
                        out.insert(x.to_string());
                    }
                    Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                        out.extend(group_heads(&g.stream()));
                    }
                    _ => {}
                }
            }
        } else if word == "super" && !preceded_by_path {
            let mut depth = 0;
            let mut j = i;
            while ident(&tokens[j]).as_deref() == Some("super")
                && is_colon(tokens.get(j + 1))
                && is_colon(tokens.get(j + 2))
            {
                depth += 1;
                j += 3;
                if j >= tokens.len() {
                    break;
                }
            }
            if depth >= path.len()
                && let Some(x) = tokens.get(j).and_then(ident)
            {
                out.insert(x);
            }
        } else if matches!(tokens.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == '!')
            && !preceded_by_path
            && let Some(owner) = macros.get(&word)
        {
            out.insert(owner.clone());
        }
    }
}

/// `macro_rules! NAME` definitions in a token stream.
fn macro_definitions(ts: TokenStream, out: &mut Vec<String>) {
    let tokens: Vec<TokenTree> = ts.into_iter().collect();
    for (i, t) in tokens.iter().enumerate() {
        if let TokenTree::Group(g) = t {
            macro_definitions(g.stream(), out);
        }
        if ident(t).as_deref() == Some("macro_rules")
            && matches!(tokens.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == '!')
            && let Some(name) = tokens.get(i + 2).and_then(ident)
        {
            out.push(name);
        }
    }
}

struct Kernel {
    /// Top-level module -> the top-level modules it names.
    edges: BTreeMap<String, BTreeSet<String>>,
}

fn kernel() -> Kernel {
    let src = workspace().join("kernel/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let parsed: Vec<(Vec<String>, TokenStream)> = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).expect("read source");
            let ts: TokenStream = text
                .parse()
                .unwrap_or_else(|e| panic!("{}: {e:?}", f.display()));
            (
                module_path(f.strip_prefix(&src).expect("under kernel/src")),
                ts,
            )
        })
        .collect();
    let mut macros = BTreeMap::new();
    for (path, ts) in &parsed {
        let mut defined = Vec::new();
        macro_definitions(ts.clone(), &mut defined);
        if let Some(top) = path.first() {
            for m in defined {
                macros.insert(m, top.clone());
            }
        }
    }
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, ts) in parsed {
        let Some(top) = path.first().cloned() else {
            continue;
        };
        let mut named = BTreeSet::new();
        names(ts, &path, &macros, &mut named);
        named.remove(&top);
        edges.entry(top).or_default().extend(named);
    }
    Kernel { edges }
}

fn layer_of(module: &str) -> Option<(usize, &'static str)> {
    LAYERS
        .iter()
        .enumerate()
        .find(|(_, (_, ms))| ms.contains(&module))
        .map(|(i, (name, _))| (i, *name))
}

/// A cycle in the module graph, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|s| s == m).expect("on stack");
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(c) = visit(n, edges, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn every_kernel_module_has_a_layer() {
    let k = kernel();
    let missing: Vec<_> = k.edges.keys().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        missing.is_empty(),
        "top-level kernel modules in no layer (add them to LAYERS in tests/architecture.rs): {missing:?}"
    );
    let stale: Vec<_> = LAYERS
        .iter()
        .flat_map(|(_, ms)| ms.iter())
        .filter(|m| !k.edges.contains_key(**m))
        .collect();
    assert!(
        stale.is_empty(),
        "LAYERS names modules that do not exist: {stale:?}"
    );
}

#[test]
fn kernel_layers_only_look_down() {
    let k = kernel();
    let mut upward = Vec::new();
    for (from, tos) in &k.edges {
        let Some((lf, lname)) = layer_of(from) else {
            continue;
        };
        for to in tos {
            // Names that are not kernel modules (`crate::kmain`, macros of
            // the crate root) have no layer; `main.rs` declares modules only.
            let Some((lt, tname)) = layer_of(to) else {
                continue;
            };
            if lt > lf {
                upward.push(format!("{from} ({lname}) names {to} ({tname})"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "upward imports:\n  {}",
        upward.join("\n  ")
    );
}

#[test]
fn arch_names_nothing_above_it() {
    let k = kernel();
    let (arch_layer, _) = layer_of("arch").expect("arch has a layer");
    let above: Vec<_> = k.edges["arch"]
        .iter()
        .filter(|m| layer_of(m).is_none_or(|(l, _)| l >= arch_layer))
        .collect();
    assert!(above.is_empty(), "arch names {above:?}");
}

#[test]
fn kernel_modules_have_no_import_cycle() {
    let k = kernel();
    if let Some(cycle) = find_cycle(&k.edges) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_checker_sees_upward_imports_and_cycles() {
    // The checks above pass only if the scanner finds names: prove it on
    // source written to break them.
    let macros = BTreeMap::from([("println".to_string(), "console".to_string())]);
    let mut named = BTreeSet::new();
    let src: TokenStream = "use crate::{panic::stop, sched}; fn f() { crate::bench::on_ping(); \
                            super::super::usb::tick(); println!(\"x\"); }"
        .parse()
        .expect("tokens");
    names(src, &["arch".into(), "trap".into()], &macros, &mut named);
    let want: BTreeSet<String> = ["panic", "sched", "bench", "usb", "console"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(named, want);
    let cyclic = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["a".to_string()])),
    ]);
    assert!(find_cycle(&cyclic).is_some());
}

/// Longest function allowed outside tests, in source lines from `fn` to its
/// closing brace.
const MAX_FN_LINES: usize = 100;

struct LongFns<'a> {
    file: &'a Path,
    in_test: usize,
    found: Vec<String>,
}

fn is_test_attr(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        let p = a.path();
        if p.is_ident("test") {
            return true;
        }
        if p.is_ident("cfg") {
            let mut test = false;
            let _ = a.parse_nested_meta(|m| {
                test |= m.path.is_ident("test");
                Ok(())
            });
            return test;
        }
        false
    })
}

impl LongFns<'_> {
    fn check(&mut self, name: &syn::Ident, sig: &syn::Signature, block: &syn::Block) {
        if self.in_test > 0 {
            return;
        }
        let start = sig.fn_token.span.start().line;
        let end = block.brace_token.span.close().end().line;
        let lines = end - start + 1;
        if lines > MAX_FN_LINES {
            self.found.push(format!(
                "{}:{start} fn {name}: {lines} lines",
                self.file.display()
            ));
        }
    }
}

impl<'ast> Visit<'ast> for LongFns<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        let test = is_test_attr(&m.attrs);
        self.in_test += usize::from(test);
        syn::visit::visit_item_mod(self, m);
        self.in_test -= usize::from(test);
    }
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        let test = is_test_attr(&f.attrs);
        self.in_test += usize::from(test);
        self.check(&f.sig.ident, &f.sig, &f.block);
        syn::visit::visit_item_fn(self, f);
        self.in_test -= usize::from(test);
    }
    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        let test = is_test_attr(&f.attrs);
        self.in_test += usize::from(test);
        self.check(&f.sig.ident, &f.sig, &f.block);
        syn::visit::visit_impl_item_fn(self, f);
        self.in_test -= usize::from(test);
    }
    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.check(&f.sig.ident, &f.sig, block);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
}

/// Source files outside tests: every crate's `src/` and the kernel's build
/// script, without the driver's fake-hardware test support.
fn non_test_sources() -> Vec<PathBuf> {
    let root = workspace();
    let mut files = Vec::new();
    for dir in [
        "src",
        "kernel/src",
        "driver/src",
        "crashdump/src",
        "ksyms/src",
    ] {
        rust_files(&root.join(dir), &mut files);
    }
    files.extend(["build.rs", "kernel/build.rs"].map(|f| root.join(f)));
    files.retain(|f| {
        let rel = f.strip_prefix(&root).expect("in workspace");
        !rel.starts_with("driver/src/testing")
            && !rel
                .file_name()
                .is_some_and(|n| n == "tests.rs" || n.to_string_lossy().ends_with("_tests.rs"))
    });
    files
}

fn long_functions(file: &Path, text: &str) -> Vec<String> {
    let ast = syn::parse_file(text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut v = LongFns {
        file,
        in_test: 0,
        found: Vec::new(),
    };
    v.visit_file(&ast);
    v.found
}

#[test]
fn no_function_outside_tests_is_over_100_lines() {
    let root = workspace();
    let mut long = Vec::new();
    for f in non_test_sources() {
        if !f.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("read source");
        long.extend(long_functions(
            f.strip_prefix(&root).expect("in workspace"),
            &text,
        ));
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines:\n  {}",
        long.join("\n  ")
    );
}

#[test]
fn the_length_check_counts_lines_and_skips_tests() {
    let body = "    let _x = 1;\n".repeat(MAX_FN_LINES);
    let src = format!(
        "fn long() {{\n{body}}}\nfn short() {{}}\n#[cfg(test)]\nmod tests {{ fn long_test() {{\n{body}}} }}\n"
    );
    let found = long_functions(Path::new("x.rs"), &src);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("fn long: 102 lines"), "{found:?}");
}
