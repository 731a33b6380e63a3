//! Text edits on the original document: the writer never re-serialises the tree, it splices
//! new text into the original, indented the way the surrounding lines are, so everything it
//! does not touch stays byte for byte.

use roxmltree::Node;

use crate::error::InputError;

/// One text edit: replace `start..end` of the original with `text`.
#[derive(Debug)]
pub(super) struct Edit {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

impl Edit {
    /// Inserts `text` at `at`.
    pub fn insert(at: usize, text: String) -> Edit {
        Edit {
            start: at,
            end: at,
            text,
        }
    }
}

/// The white space before `pos` on its line, when only white space precedes it.
pub(super) fn indent_at(text: &str, pos: usize) -> String {
    let line_start = text[..pos].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let before = &text[line_start..pos];
    if before.chars().all(|c| c == ' ' || c == '\t') {
        before.to_string()
    } else {
        String::new()
    }
}

/// The indentation one level deeper than `indent` (two spaces, as libvirt writes).
pub(super) fn deeper(indent: &str) -> String {
    format!("{indent}  ")
}

/// `text` (lines indented from column 0) with every line after the first indented by `indent`.
pub(super) fn indent_lines(text: &str, indent: &str) -> String {
    text.lines()
        .collect::<Vec<_>>()
        .join(&format!("\n{indent}"))
}

/// Edits that give element `n` the new child elements `children` (each a line of XML) and,
/// when `address` is set, replace its existing `<address>` child.
pub(super) fn child_edits(
    text: &str,
    n: Node,
    address: Option<String>,
    mut children: Vec<String>,
    out: &mut Vec<Edit>,
) {
    let r = n.range();
    let existing = n.children().find(|c| c.has_tag_name("address"));
    match (address, existing) {
        (Some(a), Some(e)) => out.push(Edit {
            start: e.range().start,
            end: e.range().end,
            text: a,
        }),
        (Some(a), None) => children.push(a),
        (None, _) => {}
    }
    if children.is_empty() {
        return;
    }
    let ei = indent_at(text, r.start);
    let ci = deeper(&ei);
    let elem = &text[r.clone()];
    let has_kids = n.children().next().is_some();
    if !has_kids && elem.ends_with("/>") {
        // `<tag .../>` becomes `<tag ...>`, the children, `</tag>`.
        let tag = n.tag_name().name();
        let prefix = match n.tag_name().namespace().and_then(|ns| n.lookup_prefix(ns)) {
            Some(p) if !p.is_empty() => format!("{p}:"),
            _ => String::new(),
        };
        let mut s = String::from(">");
        for c in &children {
            s.push_str(&format!("\n{ci}{c}"));
        }
        s.push_str(&format!("\n{ei}</{prefix}{tag}>"));
        out.push(Edit {
            start: r.end - 2,
            end: r.end,
            text: s,
        });
        return;
    }
    let close = text[..r.end].rfind("</").unwrap_or(r.end);
    let last_child_end = n
        .children()
        .rfind(|c| !c.is_text())
        .map(|c| c.range().end)
        .unwrap_or(r.start);
    let between = &text[last_child_end.min(close)..close];
    if between.contains('\n') {
        // `...\n{ei}</tag>`: put each child on its own line before the closing tag.
        let line_start = text[..close].rfind('\n').map(|i| i + 1).unwrap_or(close);
        let mut s = String::new();
        for c in &children {
            s.push_str(&format!("{ci}{c}\n"));
        }
        out.push(Edit::insert(line_start, s));
    } else {
        out.push(Edit::insert(close, children.concat()));
    }
}

/// Edits that append the elements `elems` (lines indented from column 0) to `<devices>`, or
/// add a `<devices>` holding them at the end of the domain when it has none.
pub(super) fn append_devices(text: &str, root: Node, elems: &[String], out: &mut Vec<Edit>) {
    if elems.is_empty() {
        return;
    }
    let devices = root
        .children()
        .find(|n| n.is_element() && n.has_tag_name("devices"));
    if let Some(devs) = devices {
        let di = indent_at(text, devs.range().start);
        let ci = devs
            .children()
            .find(|c| c.is_element())
            .map(|c| indent_at(text, c.range().start))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| deeper(&di));
        let lines: Vec<String> = elems.iter().map(|e| indent_lines(e, &ci)).collect();
        child_edits(text, devs, None, lines, out);
        return;
    }
    let ri = indent_at(text, root.range().start);
    let ci = deeper(&ri);
    let inner = deeper(&ci);
    let mut s = format!("{ci}<devices>\n");
    for e in elems {
        s.push_str(&format!("{inner}{}\n", indent_lines(e, &inner)));
    }
    s.push_str(&format!("{ci}</devices>\n"));
    let close = text[..root.range().end]
        .rfind("</")
        .unwrap_or(root.range().end);
    let line_start = text[..close].rfind('\n').map(|i| i + 1).unwrap_or(close);
    out.push(Edit::insert(line_start, s));
}

/// The text with every edit applied (edits may not overlap).
pub(super) fn apply(text: &str, mut edits: Vec<Edit>) -> Result<String, InputError> {
    edits.sort_by(|a, b| b.start.cmp(&a.start).then(b.end.cmp(&a.end)));
    let mut out = text.to_string();
    let mut last = usize::MAX;
    for e in edits {
        if e.end > last {
            return Err(InputError::new(
                "domain",
                "internal error: overlapping XML edits",
            ));
        }
        out.replace_range(e.start..e.end, &e.text);
        last = e.start;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_child(xml: &str, child: &str) -> String {
        let doc = roxmltree::Document::parse(xml).unwrap();
        let n = doc.root_element().first_element_child().unwrap();
        let mut e = Vec::new();
        child_edits(xml, n, None, vec![child.to_string()], &mut e);
        apply(xml, e).unwrap()
    }

    #[test]
    fn children_follow_the_layout() {
        assert_eq!(
            with_child("<d>\n  <a/>\n</d>", "<b/>"),
            "<d>\n  <a>\n    <b/>\n  </a>\n</d>"
        );
        assert_eq!(
            with_child("<d>\n  <a>\n    <x/>\n  </a>\n</d>", "<b/>"),
            "<d>\n  <a>\n    <x/>\n    <b/>\n  </a>\n</d>"
        );
        assert_eq!(
            with_child("<d><a><x/></a></d>", "<b/>"),
            "<d><a><x/><b/></a></d>"
        );
    }

    #[test]
    fn address_replaces_the_old_one() {
        let xml = "<d><a><address type='pci' slot='1'/></a></d>";
        let doc = roxmltree::Document::parse(xml).unwrap();
        let n = doc.root_element().first_element_child().unwrap();
        let mut e = Vec::new();
        child_edits(xml, n, Some("<address/>".into()), vec![], &mut e);
        assert_eq!(apply(xml, e).unwrap(), "<d><a><address/></a></d>");
    }

    #[test]
    fn devices_are_created_when_missing() {
        let xml = "<domain>\n  <name>x</name>\n</domain>";
        let doc = roxmltree::Document::parse(xml).unwrap();
        let mut e = Vec::new();
        append_devices(
            xml,
            doc.root_element(),
            &["<a>\n  <b/>\n</a>".into()],
            &mut e,
        );
        assert_eq!(
            apply(xml, e).unwrap(),
            "<domain>\n  <name>x</name>\n  <devices>\n    <a>\n      <b/>\n    </a>\n  </devices>\n</domain>"
        );
    }

    #[test]
    fn overlapping_edits_are_an_internal_error() {
        let e = vec![
            Edit::insert(1, "x".into()),
            Edit {
                start: 0,
                end: 3,
                text: String::new(),
            },
        ];
        assert!(apply("abcd", e).is_err());
    }
}
