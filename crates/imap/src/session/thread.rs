//! RFC 5256 threading. REFERENCES builds the parent/child tree from Message-ID and
//! References (steps 1–4 of §3 "REFERENCES"; step 5, merging root threads by subject, is
//! not done). ORDEREDSUBJECT groups by base subject.

use std::collections::{BTreeMap, HashMap};

pub(crate) struct ThreadMsg {
    /// Sequence number or UID to print.
    pub number: u32,
    pub message_id: Option<String>,
    pub references: Vec<String>,
    pub subject: String,
    pub date: i64,
}

struct Node {
    msg: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Forest<'a> {
    msgs: &'a [ThreadMsg],
    nodes: Vec<Node>,
}

impl Forest<'_> {
    fn add(&mut self) -> usize {
        self.nodes.push(Node {
            msg: None,
            parent: None,
            children: Vec::new(),
        });
        self.nodes.len() - 1
    }

    /// Is `a` an ancestor of (or equal to) `b`?
    fn is_ancestor(&self, a: usize, b: usize) -> bool {
        let mut cur = Some(b);
        let mut steps = 0;
        while let Some(n) = cur {
            if n == a {
                return true;
            }
            steps += 1;
            if steps > self.nodes.len() {
                return true; // a cycle: refuse the link
            }
            cur = self.nodes[n].parent;
        }
        false
    }

    fn link(&mut self, parent: usize, child: usize) {
        if let Some(old) = self.nodes[child].parent {
            self.nodes[old].children.retain(|&c| c != child);
        }
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }

    fn date(&self, n: usize, depth: usize) -> i64 {
        if let Some(m) = self.nodes[n].msg {
            return self.msgs[m].date;
        }
        if depth > 64 {
            return i64::MAX;
        }
        self.nodes[n]
            .children
            .iter()
            .map(|&c| self.date(c, depth + 1))
            .min()
            .unwrap_or(i64::MAX)
    }

    /// Children with dummies replaced by their own children (RFC 5256 step 4), by date.
    fn effective_children(&self, n: usize, depth: usize) -> Vec<usize> {
        let mut out = Vec::new();
        for &c in &self.nodes[n].children {
            if self.nodes[c].msg.is_none() && depth < 64 {
                out.extend(self.effective_children(c, depth + 1));
            } else if self.nodes[c].msg.is_some() {
                out.push(c);
            }
        }
        out.sort_by_key(|&c| (self.date(c, 0), c));
        out
    }

    fn render(&self, n: usize, depth: usize, s: &mut String) {
        if let Some(m) = self.nodes[n].msg {
            s.push_str(&self.msgs[m].number.to_string());
        }
        if depth > 256 {
            return;
        }
        let kids = self.effective_children(n, 0);
        match kids.len() {
            0 => {}
            1 => {
                s.push(' ');
                self.render(kids[0], depth + 1, s);
            }
            _ => {
                s.push(' ');
                for k in kids {
                    s.push('(');
                    self.render(k, depth + 1, s);
                    s.push(')');
                }
            }
        }
    }
}

pub(crate) fn references(msgs: Vec<ThreadMsg>) -> String {
    let mut f = Forest {
        msgs: &msgs,
        nodes: Vec::new(),
    };
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for (mi, m) in msgs.iter().enumerate() {
        let own = match &m.message_id {
            Some(id) => match by_id.get(id) {
                Some(&n) if f.nodes[n].msg.is_none() => n,
                // A duplicate Message-ID gets its own node (RFC 5256 step 1A).
                Some(_) => f.add(),
                None => {
                    let n = f.add();
                    by_id.insert(id.clone(), n);
                    n
                }
            },
            None => f.add(),
        };
        f.nodes[own].msg = Some(mi);
        let mut prev: Option<usize> = None;
        for r in &m.references {
            let n = match by_id.get(r) {
                Some(&n) => n,
                None => {
                    let n = f.add();
                    by_id.insert(r.clone(), n);
                    n
                }
            };
            if let Some(p) = prev
                && f.nodes[n].parent.is_none()
                && !f.is_ancestor(n, p)
            {
                f.link(p, n);
            }
            prev = Some(n);
        }
        if let Some(p) = prev
            && !f.is_ancestor(own, p)
        {
            f.link(p, own);
        }
    }
    let mut roots: Vec<usize> = (0..f.nodes.len())
        .filter(|&n| f.nodes[n].parent.is_none())
        .collect();
    roots.sort_by_key(|&n| (f.date(n, 0), n));
    let mut out = String::new();
    for r in roots {
        if f.nodes[r].msg.is_some() {
            out.push('(');
            f.render(r, 0, &mut out);
            out.push(')');
            continue;
        }
        let kids = f.effective_children(r, 0);
        match kids.len() {
            0 => {}
            1 => {
                out.push('(');
                f.render(kids[0], 0, &mut out);
                out.push(')');
            }
            _ => {
                out.push('(');
                for k in kids {
                    out.push('(');
                    f.render(k, 0, &mut out);
                    out.push(')');
                }
                out.push(')');
            }
        }
    }
    out
}

/// RFC 5256 ORDEREDSUBJECT: threads by base subject, each ordered by date; later
/// messages are children of the first.
pub(crate) fn ordered_subject(mut msgs: Vec<ThreadMsg>) -> String {
    msgs.sort_by_key(|m| (m.date, m.number));
    let mut groups: BTreeMap<String, Vec<&ThreadMsg>> = BTreeMap::new();
    for m in &msgs {
        groups.entry(m.subject.to_lowercase()).or_default().push(m);
    }
    let mut threads: Vec<&Vec<&ThreadMsg>> = groups.values().collect();
    threads.sort_by_key(|g| g.first().map(|m| (m.date, m.number)));
    let mut out = String::new();
    for g in threads {
        let nums: Vec<String> = g.iter().map(|m| m.number.to_string()).collect();
        match nums.len() {
            0 => {}
            1 | 2 => out.push_str(&format!("({})", nums.join(" "))),
            _ => {
                let rest: String = nums[1..].iter().map(|n| format!("({n})")).collect();
                out.push_str(&format!("({} {rest})", nums[0]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(number: u32, id: &str, refs: &[&str], date: i64) -> ThreadMsg {
        ThreadMsg {
            number,
            message_id: Some(id.into()),
            references: refs.iter().map(|s| s.to_string()).collect(),
            subject: "s".into(),
            date,
        }
    }

    #[test]
    fn references_threads_replies_under_their_parents() {
        let msgs = vec![
            msg(1, "a", &[], 1),
            msg(2, "b", &["a"], 2),
            msg(3, "c", &["a"], 3),
            msg(4, "d", &[], 4),
            msg(5, "e", &["a", "b"], 5),
        ];
        assert_eq!(references(msgs), "(1 (2 5)(3))(4)");
    }

    #[test]
    fn missing_parent_becomes_a_dummy_root() {
        let msgs = vec![msg(1, "x", &["gone"], 1), msg(2, "y", &["gone"], 2)];
        assert_eq!(references(msgs), "((1)(2))");
    }

    #[test]
    fn reference_loops_do_not_hang() {
        let msgs = vec![msg(1, "a", &["b"], 1), msg(2, "b", &["a"], 2)];
        let out = references(msgs);
        assert!(out.contains('1') && out.contains('2'));
    }
}
