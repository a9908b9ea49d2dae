//! A JSON object read as its members in order, each value raw, and the chat body such members
//! are translated into: for bodies read as chat requests (Responses and legacy completions).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::record::conversation::refuse_fields;
use crate::record::json::{self, Kind, Obj};
use crate::record::{MapOptions, Notes, Raw, Reject};

/// The members of an object, in order, with their raw values. A key written twice (in any
/// spelling) is refused, as serde refuses a duplicate field.
pub(crate) struct Members<'a>(pub Vec<(Cow<'a, str>, Raw<'a>)>);

impl<'a> Members<'a> {
    /// Reads the object `raw` (at `path`, for messages).
    pub(crate) fn of(raw: Raw<'a>, path: impl fmt::Display + Copy) -> Result<Self, Reject> {
        json::expect(raw, Kind::Object, path)?;
        // The scanner reads what serde reads, several times faster; serde words what the scanner
        // gives up on (a duplicate member).
        if let Ok(members) = super::scan::members(raw.get()) {
            return Ok(members);
        }
        let m: Members<'a> = json::parse(raw, path)?;
        Ok(m)
    }

    /// The elements of the array `raw` (at `path`), each with its members when the scanner read
    /// them in the same pass; where it did not (not an object, a duplicate member anywhere),
    /// [`Members::of`] on the element says what is wrong, in the element's turn.
    pub(crate) fn of_elements(
        raw: Raw<'a>,
        path: impl fmt::Display + Copy,
    ) -> Result<Vec<(Raw<'a>, Option<Self>)>, Reject> {
        match super::scan::elements_with_members(raw.get()) {
            Ok(list) => Ok(list),
            Err(_) => Ok(json::elements(raw, path)?
                .into_iter()
                .map(|element| (element, None))
                .collect()),
        }
    }

    /// The members of an element from [`Members::of_elements`], at `path`.
    pub(crate) fn of_element(
        (raw, members): (Raw<'a>, Option<Self>),
        path: impl fmt::Display + Copy,
    ) -> Result<Self, Reject> {
        match members {
            Some(members) => Ok(members),
            None => Self::of(raw, path),
        }
    }

    /// The bytes of the values: about what a rewrite of the object takes.
    pub(crate) fn values_len(&self) -> usize {
        self.0.iter().map(|(_, v)| v.get().len()).sum()
    }

    /// The value of `key` (null counts as absent, as in OpenAI's API).
    pub(crate) fn get(&self, key: &str) -> Option<Raw<'a>> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
            .filter(|v| v.get() != "null")
    }
}

/// The names of an object's members so far, for telling a duplicate: the list itself while it is
/// short, a hash set past that (an object of 80,000 members must not take quadratic time).
#[derive(Default)]
pub(crate) struct Names<'a>(Option<HashSet<Cow<'a, str>>>);

impl<'a> Names<'a> {
    /// Beyond this many members, names are hashed.
    const LINEAR: usize = 32;

    /// Whether `key` is new to `list` (the members so far, in order); it counts as seen after.
    // (A `Cow` by reference: the set keeps a copy of it, borrowed where the key is.)
    #[allow(clippy::ptr_arg)]
    pub(crate) fn insert<V>(&mut self, list: &[(Cow<'a, str>, V)], key: &Cow<'a, str>) -> bool {
        if let Some(set) = &mut self.0 {
            return set.insert(key.clone());
        }
        if list.iter().any(|(k, _)| k == key) {
            return false;
        }
        if list.len() >= Self::LINEAR {
            let mut set: HashSet<Cow<'a, str>> = list.iter().map(|(k, _)| k.clone()).collect();
            set.insert(key.clone());
            self.0 = Some(set);
        }
        true
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut out: Vec<(Cow<'de, str>, Raw<'de>)> = Vec::new();
                let mut names = Names::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let value: Raw<'de> = map.next_value()?;
                    if !names.insert(&out, &key) {
                        return Err(de::Error::custom(format_args!("duplicate member `{key}`")));
                    }
                    out.push((key, value));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A Responses (or completions) body rewritten as a chat body.
pub(crate) struct Translated<'a> {
    /// The chat body (JSON).
    pub body: String,
    /// The `model` literal of the line's own body.
    pub model: Option<Raw<'a>>,
    /// Key paths of the chat body and what they are in the line, most specific first.
    pub(crate) renames: Vec<(String, String)>,
}

impl<'a> Translated<'a> {
    /// An empty translation of the body with these members.
    pub(crate) fn new(members: &Members<'a>) -> Self {
        Translated {
            body: String::new(),
            model: members
                .get("model")
                .filter(|m| Kind::of(*m) == Kind::String),
            renames: Vec::new(),
        }
    }

    /// Sets the chat body to the JSON text `out` (UTF-8: it is written from `&str` pieces).
    pub(crate) fn set_body(&mut self, out: Vec<u8>) {
        // The SIMD validator: the standard one's walk through non-ASCII prose showed in profiles.
        simdutf8::basic::from_utf8(&out).expect("JSON text is UTF-8");
        // SAFETY: validated as UTF-8 just above.
        self.body = unsafe { String::from_utf8_unchecked(out) };
    }

    /// The reject with the chat body's key paths named as the line writes them.
    pub(crate) fn rephrase(&self, mut reject: Reject) -> Reject {
        self.rephrase_names(std::slice::from_mut(&mut reject.message));
        reject
    }

    /// Field names or messages, with the chat body's names as the line writes them (for the
    /// fields a family dropped).
    ///
    /// Each text takes, in order, every rename whose chat name it holds at that point. Only the
    /// renames that can match are tried: a line of many items has as many renames, and trying
    /// each on each dropped field's name was quadratic. A hostile line's texts can still hold
    /// (or nearly hold) thousands of names each: the work is capped at [`RENAME_BUDGET`], past
    /// which the texts left keep the chat body's names.
    pub(crate) fn rephrase_names(&self, texts: &mut [String]) {
        self.rephrase_counted(texts);
    }

    /// [`rephrase_names`](Self::rephrase_names), saying how many renames it tried on a text.
    fn rephrase_counted(&self, texts: &mut [String]) -> usize {
        self.rephrase_within(texts, RENAME_BUDGET).tried
    }

    /// [`rephrase_names`](Self::rephrase_names) doing at most about `budget` of work (see
    /// [`RENAME_BUDGET`]).
    fn rephrase_within(&self, texts: &mut [String], budget: u64) -> Work {
        let mut work = Work {
            tried: 0,
            lookups: 0,
            read: 0,
            budget,
        };
        if texts.is_empty() {
            return work;
        }
        let index = RenameIndex::of(&self.renames);
        for text in texts {
            let (mut from, mut renamed) = (0, 0);
            while renamed < INDEXED_RENAMES {
                let Some(i) = index.first_held(&self.renames, text, from, &mut work) else {
                    from = self.renames.len();
                    break;
                };
                let (chat, line) = &self.renames[i];
                work.read += text.len() as u64;
                *text = text.replace(chat.as_str(), line);
                (from, renamed) = (i + 1, renamed + 1);
            }
            // A text that quotes many names (a message listing a turn's calls): each search reads
            // the whole text, so past a few, trying every rename left once each costs less.
            for (chat, line) in &self.renames[from..] {
                if !work.afford(text.len()) {
                    break;
                }
                if text.contains(chat.as_str()) {
                    work.read += text.len() as u64;
                    *text = text.replace(chat.as_str(), line);
                }
            }
            if work.spent() {
                break;
            }
        }
        work
    }
}

/// The most work one rephrasing does, in bytes of text read by its searches and rewrites: about a
/// second of searching here. Every rename a text takes, and every rename a long text tries,
/// reads the whole text, so a hostile line — tens of thousands of calls, quoted or half-quoted in
/// a long member name — would otherwise take minutes (20,000 calls in a 3.6 MB line took 15–20 s,
/// growing with the square of the line). Past it, the texts not yet renamed keep the chat body's
/// names: a note or a message worded in the chat body's terms, where a real line never comes
/// close (a text quoting 4,000 calls' names fits).
const RENAME_BUDGET: u64 = 4 << 30;

/// The least one step of the renaming costs, in bytes of searching: looking up one run of a
/// text's segments in the index (a hash of up to [`RenameIndex::depth`] strings and a probe,
/// about 30 ns measured; a text of `.]` repeated is a segment every two bytes), or trying one
/// rename on a text, however short (a search's setup, about 110 ns measured: thousands of short
/// texts that each take eight renames, then try every other, made 40 million tries of the
/// budget when only their bytes were counted).
const STEP_COST: u64 = 512;

/// What a rephrasing has done so far, and may still do.
struct Work {
    /// Renames tried.
    tried: usize,
    /// Runs of segments looked up in the index.
    lookups: u64,
    /// Work done, in bytes read (each lookup or try at least [`STEP_COST`]).
    read: u64,
    budget: u64,
}

impl Work {
    /// Counts one rename tried on a text of `len` bytes, if the budget allows reading it.
    fn afford(&mut self, len: usize) -> bool {
        if !self.charge((len as u64).max(STEP_COST)) {
            return false;
        }
        self.tried += 1;
        true
    }

    /// Counts `cost` more work, if the budget has room left.
    fn charge(&mut self, cost: u64) -> bool {
        if self.spent() {
            return false;
        }
        self.read = self.read.saturating_add(cost);
        true
    }

    /// Whether the budget is used up.
    fn spent(&self) -> bool {
        self.read >= self.budget
    }
}

/// How many renames a text takes through the index before the rest are tried in turn.
const INDEXED_RENAMES: usize = 8;

/// The renames by the indexed segments of their chat name (`["messages[1]", "tool_calls[0]"]`
/// of `body.messages[1].tool_calls[0].id`): a text that holds a name holds its segments, one
/// after the other, among its own. Names without a segment (`body.messages`,
/// `max_completion_tokens`) are few and always tried.
struct RenameIndex<'r> {
    by_path: HashMap<Vec<&'r str>, Vec<usize>>,
    always: Vec<usize>,
    /// The most segments a chat name has.
    depth: usize,
}

impl<'r> RenameIndex<'r> {
    fn of(renames: &'r [(String, String)]) -> Self {
        let mut index = RenameIndex {
            by_path: HashMap::new(),
            always: Vec::new(),
            depth: 0,
        };
        for (i, (chat, _)) in renames.iter().enumerate() {
            let path: Vec<&str> = segments(chat).collect();
            if path.is_empty() {
                index.always.push(i);
            } else {
                index.depth = index.depth.max(path.len());
                index.by_path.entry(path).or_default().push(i);
            }
        }
        index
    }

    /// The first rename from `from` on whose chat name `text` holds. Each list of renames is
    /// looked at once, and only up to the first one held: the work follows the text and the
    /// renames it can hold, never all renames for each of the text's segments.
    fn first_held(
        &self,
        renames: &[(String, String)],
        text: &str,
        from: usize,
        work: &mut Work,
    ) -> Option<usize> {
        // Finding the text's segments reads it once; looking them up costs by their number, which
        // is counted before they are listed or looked up.
        let runs = (segments(text).count() as u64).saturating_mul(self.depth as u64);
        if !work.charge((text.len() as u64).saturating_add(runs.saturating_mul(STEP_COST)))
            || work.spent()
        {
            return None;
        }
        work.lookups += runs;
        let mut first: Option<usize> = None;
        let mut consider = |list: &[usize]| {
            let start = list.partition_point(|&i| i < from);
            for &i in &list[start..] {
                if first.is_some_and(|f| i >= f) || !work.afford(text.len()) {
                    break;
                }
                if text.contains(renames[i].0.as_str()) {
                    first = Some(i);
                    break;
                }
            }
        };
        consider(&self.always);
        let held: Vec<&str> = segments(text).collect();
        let mut looked = HashSet::new();
        for start in 0..held.len() {
            for end in start + 1..=held.len().min(start + self.depth) {
                let path = &held[start..end];
                if let Some(list) = self.by_path.get(path) {
                    if looked.insert(path) {
                        consider(list);
                    }
                }
            }
        }
        // Cut short, the first found may not be the first held: take none.
        first.filter(|_| !work.spent())
    }
}

/// The indexed segments of a key path or message, in order: each `name[…]` that follows a `.`
/// with no `.` or `]` in between (`messages[3]`, `tool_calls[0]`). Each is cut out by what lies
/// between it and the `.` before it, so a text that holds a chat name yields the name's segments
/// in a row (the first `]` of a name with no `.` before it yields none in the name, and perhaps one
/// in the text, before the rest).
fn segments(text: &str) -> impl Iterator<Item = &str> {
    let (mut dot, mut close) = (None::<usize>, None::<usize>);
    text.bytes().enumerate().filter_map(move |(i, b)| match b {
        b'.' => {
            dot = Some(i);
            None
        }
        b']' => {
            let segment = dot
                .filter(|&d| close.is_none_or(|c| c < d))
                .map(|d| &text[d + 1..=i]);
            close = Some(i);
            segment
        }
        _ => None,
    })
}

/// The members a rewrite copies under the same name, ignores (they describe the call), or
/// refuses as chat-only (`why`); any other goes to the chat body by name, for the chat path's
/// rule.
pub(crate) struct Sorting<'s> {
    pub same_name: &'s [&'s str],
    pub ignored: &'s [&'s str],
    pub chat_only: &'s [&'s str],
    pub why: &'s str,
}

impl Sorting<'_> {
    /// Writes or refuses one member `name` (not null) as sorted.
    pub(crate) fn member(
        &self,
        o: &mut Obj<'_>,
        name: &str,
        value: Raw<'_>,
        opts: &MapOptions,
        notes: &mut Notes,
    ) -> Result<(), Reject> {
        if self.same_name.contains(&name) {
            o.raw(name, value.get());
        } else if self.chat_only.contains(&name) {
            refuse_fields(&[(name, true)], opts, notes, self.why)?;
        } else if !self.ignored.contains(&name) {
            unknown(o, name, value);
        }
        Ok(())
    }
}

/// Writes a member the chat path does not know, under `name` (so its refusal names it).
pub(crate) fn unknown(o: &mut Obj<'_>, name: &str, value: Raw<'_>) {
    let mut key = Vec::new();
    crate::record::json::write_str(&mut key, name);
    // `Obj::key` takes keys that need no escaping; this one may.
    let key = String::from_utf8(key).expect("UTF-8");
    o.raw(&key[1..key.len() - 1], value.get());
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What every rename in turn says: the rule [`Translated::rephrase_names`] keeps, tried
    /// rename by rename.
    fn each_in_turn(renames: &[(String, String)], text: &str) -> String {
        let mut text = text.to_owned();
        for (chat, line) in renames {
            if text.contains(chat.as_str()) {
                text = text.replace(chat.as_str(), line);
            }
        }
        text
    }

    /// Key paths and messages built from pieces that overlap in every way the index must get
    /// right: names with and without indexes, dots inside brackets, a name that holds another.
    fn path() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "body",
            ".",
            "messages",
            "[1]",
            "[10]",
            "[0]",
            "]",
            "[",
            "tool_calls",
            ".id",
            "input",
            "max_completion_tokens",
            ".image_url.url",
            ": bad ",
            "x.y[2]",
            "é",
        ]);
        prop::collection::vec(piece, 0..8).prop_map(|p| p.concat())
    }

    proptest! {
        #[test]
        fn renames_apply_as_each_in_turn_would(
            renames in prop::collection::vec((path(), path()), 0..12),
            texts in prop::collection::vec(path(), 0..6),
        ) {
            let renames: Vec<(String, String)> =
                renames.into_iter().filter(|(chat, _)| !chat.is_empty()).collect();
            // Texts that hold the chat names, whole and in pairs, as the messages that quote them do.
            let mut texts = texts;
            for (i, (chat, line)) in renames.iter().enumerate() {
                let (next, _) = &renames[(i + 1) % renames.len()];
                texts.push(format!("{chat}.q: {line} {next}{chat}"));
            }
            // And one that quotes them all, past what the index takes.
            texts.push(renames.iter().map(|(chat, _)| chat.as_str()).collect::<Vec<_>>().join(" "));
            let t = Translated { body: String::new(), model: None, renames };
            let mut got = texts.clone();
            t.rephrase_names(&mut got);
            let want: Vec<String> = texts.iter().map(|x| each_in_turn(&t.renames, x)).collect();
            prop_assert_eq!(got, want);
        }
    }

    /// A text that quotes many chat names of one turn, or one segment many times, is renamed in
    /// time and memory that follow the text (trying a turn's every rename for each of its segments
    /// took minutes and gigabytes).
    #[test]
    fn many_names_in_one_text_are_renamed_as_each_in_turn_would() {
        let n = 300;
        let t = turn_of_calls(n);
        let quoting: Vec<String> = (0..n)
            .map(|k| format!("body.messages[1].tool_calls[{k}].id"))
            .collect();
        let texts = vec![
            quoting.join(" "),
            "x.messages[1]".repeat(20_000) + " body.messages[1].tool_calls[7].id",
        ];
        let mut got = texts.clone();
        let tried = t.rephrase_counted(&mut got);
        let want: Vec<String> = texts.iter().map(|x| each_in_turn(&t.renames, x)).collect();
        assert_eq!(got, want);
        // Each text tries the renames of the calls it quotes first (at most four a call), then
        // perhaps every rename once: never a turn's every rename for each name or segment.
        let most = texts.len() * (t.renames.len() + 4 * INDEXED_RENAMES + 2);
        assert!(tried <= most, "{tried} renames tried, {most} at most");
        assert!(
            got[1].ends_with(" body.input[8].call_id"),
            "{}",
            &got[1][got[1].len() - 40..]
        );
    }

    /// The chat names of the first `n` calls of [`turn_of_calls`], each between `before` and
    /// `after`, run together.
    fn call_names(n: usize, before: &str, after: &str) -> String {
        (0..n)
            .map(|k| format!("{before}body.messages[1].tool_calls[{k}]{after}"))
            .collect()
    }

    /// The renames of a Responses line whose input is a message and `n` function calls: the
    /// calls of one assistant turn in the chat body.
    fn turn_of_calls(n: usize) -> Translated<'static> {
        let renames = (0..n)
            .flat_map(|k| {
                let (chat, at) = (
                    format!("body.messages[1].tool_calls[{k}]"),
                    format!("body.input[{}]", k + 1),
                );
                [
                    (format!("{chat}.function.name"), format!("{at}.name")),
                    (format!("{chat}.function"), at.clone()),
                    (format!("{chat}.id"), format!("{at}.call_id")),
                    (chat, at),
                ]
            })
            .chain([("body.messages[1]".to_owned(), "body.input[1]".to_owned())])
            .collect();
        Translated {
            body: String::new(),
            model: None,
            renames,
        }
    }

    /// However a line's texts quote its calls — every name whole, or every name's segments
    /// without the name — renaming reads about the budget at most, and the texts it reaches
    /// before the budget runs out are renamed as each rename in turn would.
    #[test]
    fn hostile_texts_are_renamed_within_the_budget() {
        let n = 400;
        let t = turn_of_calls(n);
        let short = "body.messages[1].tool_calls[3].id is dropped".to_owned();
        let half_quoting: String = (0..n)
            .map(|k| format!("x.messages[1].tool_calls[{k}]"))
            .collect();
        let quoting = (0..n)
            .map(|k| format!("body.messages[1].tool_calls[{k}].id"))
            .collect::<Vec<_>>()
            .join(" ");
        let texts = vec![short.clone(), half_quoting, quoting, short.clone()];
        let longest = texts.iter().map(String::len).max().unwrap_or(0) as u64;
        let want: Vec<String> = texts.iter().map(|x| each_in_turn(&t.renames, x)).collect();

        let mut got = texts.clone();
        let whole = t.rephrase_within(&mut got, RENAME_BUDGET);
        assert_eq!(got, want, "well within the default budget");

        let budget = whole.read / 4;
        let mut got = texts.clone();
        let cut = t.rephrase_within(&mut got, budget);
        assert!(
            cut.read <= budget + 3 * longest,
            "{} bytes read, budget {budget}",
            cut.read
        );
        // The half-quoting text, which holds no name, uses up the budget.
        assert_eq!(got[0], want[0], "the first text is renamed");
        assert_ne!(got[0], texts[0]);
        assert_eq!(got[1], texts[1]);
        assert_eq!(
            got[2], texts[2],
            "texts past the budget keep the chat body's names"
        );
        assert_eq!(got[3], texts[3]);
    }

    /// Many short texts that each take eight renames and then try every other one: each try is
    /// counted at least [`STEP_COST`], however short the text (the search's setup is what costs).
    #[test]
    fn short_texts_pay_for_every_try() {
        let t = turn_of_calls(200);
        let eight = call_names(8, "", "");
        let texts: Vec<String> = (0..50).map(|i| format!("{eight}.x{i}")).collect();
        let budget = 64 * STEP_COST * 200;
        let mut got = texts.clone();
        let work = t.rephrase_within(&mut got, budget);
        assert!(
            work.tried as u64 <= budget / STEP_COST + 1,
            "{} renames tried for a budget of {budget}",
            work.tried
        );
        assert_eq!(got[0], each_in_turn(&t.renames, &texts[0]));
        assert_eq!(got[49], texts[49], "past the budget, the names stay");
    }

    /// A text that is a segment every two bytes (`.]` repeated) costs by its segments, not its
    /// length: looking each run of them up in the index, again after each rename, took seconds
    /// for a long name while the budget counted only its bytes.
    #[test]
    fn a_text_dense_with_segments_is_looked_up_within_the_budget() {
        let t = turn_of_calls(300);
        let names = call_names(8, " ", ".id");
        let texts = vec![".]".repeat(50_000) + &names];
        let want = each_in_turn(&t.renames, &texts[0]);

        let mut got = texts.clone();
        let whole = t.rephrase_within(&mut got, RENAME_BUDGET);
        assert_eq!(got[0], want, "within the default budget");
        assert!(whole.lookups >= 100_000, "{} lookups", whole.lookups);

        let budget = 1 << 20;
        let mut got = texts.clone();
        let cut = t.rephrase_within(&mut got, budget);
        assert!(
            cut.lookups <= budget / STEP_COST,
            "{} lookups for a budget of {budget}",
            cut.lookups
        );
        assert_eq!(got, texts, "past the budget, the names stay");
    }
}
