//! A pickle reader that runs nothing: it builds the values a `torch.save` pickle describes
//! (dicts, lists, numbers, strings, tensor references) and keeps every other object as an
//! inert record of its class and arguments. Python would import and call those classes;
//! here a crafted file can at most fail to parse.
//!
//! burn-store has a pickle reader of its own, but it drops each tensor's strides and reads
//! past the end of a storage as zeros (docs/src/guide/known-limits.md), so `import` reads
//! pickles here and keeps every argument of `_rebuild_tensor_v2`.

use std::fmt;

/// The most containers nested in one another: state_dicts nest a few levels, and dropping or
/// walking a deeper value would recurse that deep.
const MAX_DEPTH: usize = 64;

/// The most values a pickle may build, memo copies included, so that a small file cannot
/// expand into an exponential tree by copying memoized values into one another.
const MAX_VALUES: usize = 4_000_000;

/// A value of the pickle.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, as its little-endian two's-complement bytes (the
    /// legacy `torch.save` magic number is 80 bits).
    Long(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// Entries in the file's order (an `OrderedDict` keeps it, and so does a plain dict).
    Dict(Vec<(Value, Value)>),
    /// A class or function named by the pickle (`GLOBAL`), never imported.
    Global {
        module: String,
        name: String,
    },
    /// A persistent id: `torch.save` refers to each storage by one.
    Persistent(Box<Value>),
    /// A call the pickle asks for (`REDUCE`, `NEWOBJ`) that this reader does not perform,
    /// with the state a `BUILD` gave it.
    Object {
        callable: Box<Value>,
        args: Box<Value>,
        state: Option<Box<Value>>,
    },
}

impl Value {
    /// How deeply containers nest in this value.
    fn depth(&self) -> usize {
        match self {
            Value::Tuple(items) | Value::List(items) => {
                1 + items.iter().map(Value::depth).max().unwrap_or(0)
            }
            Value::Dict(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.depth().max(v.depth()))
                    .max()
                    .unwrap_or(0)
            }
            Value::Persistent(v) => 1 + v.depth(),
            Value::Object {
                callable,
                args,
                state,
            } => {
                1 + callable
                    .depth()
                    .max(args.depth())
                    .max(state.as_ref().map_or(0, |s| s.depth()))
            }
            _ => 0,
        }
    }

    /// The number of values in this value, itself included.
    fn count(&self) -> usize {
        match self {
            Value::Tuple(items) | Value::List(items) => {
                1 + items.iter().map(Value::count).sum::<usize>()
            }
            Value::Dict(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.count() + v.count())
                    .sum::<usize>()
            }
            Value::Persistent(v) => 1 + v.count(),
            Value::Object {
                callable,
                args,
                state,
            } => 1 + callable.count() + args.count() + state.as_ref().map_or(0, |s| s.count()),
            _ => 1,
        }
    }

    /// The module-qualified name of a global (`torch._utils._rebuild_tensor_v2`).
    pub fn global_name(&self) -> Option<String> {
        match self {
            Value::Global { module, name } => Some(format!("{module}.{name}")),
            _ => None,
        }
    }
}

/// Why a pickle could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct PickleError {
    /// Byte offset of the opcode that failed.
    pub at: usize,
    pub message: String,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pickle byte {}: {}", self.at, self.message)
    }
}

impl std::error::Error for PickleError {}

/// One item of the pickle machine's stack: a value, or the mark that `MARK` pushes.
#[derive(Debug)]
enum Item {
    Value(Value),
    Mark,
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Where the current opcode started, for errors.
    op_at: usize,
    stack: Vec<Item>,
    memo: std::collections::HashMap<u64, Value>,
    values: usize,
}

/// Reads one pickle from the start of `bytes`: its value and the number of bytes it took
/// (a legacy `torch.save` file holds several pickles back to back).
pub fn read(bytes: &[u8]) -> Result<(Value, usize), PickleError> {
    let mut machine = Machine {
        bytes,
        pos: 0,
        op_at: 0,
        stack: Vec::new(),
        memo: Default::default(),
        values: 0,
    };
    let value = machine.run()?;
    Ok((value, machine.pos))
}

impl Machine<'_> {
    fn error<T>(&self, message: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError {
            at: self.op_at,
            message: message.into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        if self.bytes.len() - self.pos < n {
            return self.error(format!(
                "needs {n} more bytes, but the pickle ends {} bytes on",
                self.bytes.len() - self.pos
            ));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        Ok(self.take(N)?.try_into().expect("N bytes taken"))
    }

    fn len_u32(&mut self) -> Result<usize, PickleError> {
        Ok(u32::from_le_bytes(self.le()?) as usize)
    }

    fn len_u64(&mut self) -> Result<usize, PickleError> {
        let n = u64::from_le_bytes(self.le()?);
        usize::try_from(n).or_else(|_| self.error(format!("a length of {n} bytes")))
    }

    /// A text line without its `\n` (the text opcodes of protocol 0).
    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.bytes[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return self.error("a text argument without its end of line");
        };
        let text = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(text)
    }

    fn text(&mut self, n: usize) -> Result<String, PickleError> {
        let bytes = self.take(n)?.to_vec();
        String::from_utf8(bytes).or_else(|_| self.error("a string that is not UTF-8"))
    }

    /// Counts `n` more values against [`MAX_VALUES`].
    fn admit(&mut self, n: usize) -> Result<(), PickleError> {
        self.values += n;
        if self.values > MAX_VALUES {
            return self.error(format!("builds more than {MAX_VALUES} values"));
        }
        Ok(())
    }

    fn check_depth(&self, depth: usize) -> Result<(), PickleError> {
        if depth > MAX_DEPTH {
            return self.error(format!("nests containers more than {MAX_DEPTH} deep"));
        }
        Ok(())
    }

    /// Pushes a value that is new to the machine (a literal, or a copy of a memoized one).
    fn push(&mut self, value: Value) -> Result<(), PickleError> {
        self.admit(value.count())?;
        self.check_depth(value.depth())?;
        self.stack.push(Item::Value(value));
        Ok(())
    }

    /// Pushes a value built around `children`, values popped from the stack and already
    /// counted: only the new value itself counts.
    fn push_built(&mut self, value: Value) -> Result<(), PickleError> {
        self.admit(1)?;
        self.check_depth(value.depth())?;
        self.stack.push(Item::Value(value));
        Ok(())
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        match self.stack.pop() {
            Some(Item::Value(v)) => Ok(v),
            Some(Item::Mark) => self.error("a mark where a value was expected"),
            None => self.error("an empty stack"),
        }
    }

    fn top(&mut self) -> Result<&mut Value, PickleError> {
        match self.stack.last_mut() {
            Some(Item::Value(v)) => Ok(v),
            _ => Err(PickleError {
                at: self.op_at,
                message: "no value on the stack".into(),
            }),
        }
    }

    /// The values above the topmost mark, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let Some(mark) = self.stack.iter().rposition(|i| matches!(i, Item::Mark)) else {
            return self.error("no mark on the stack");
        };
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items
            .into_iter()
            .map(|i| match i {
                Item::Value(v) => v,
                Item::Mark => unreachable!("the topmost mark is at `mark`"),
            })
            .collect())
    }

    /// The depth of a container that gains `items`: checked on the new items alone, since
    /// appending one item at a time must not re-walk the whole container each time.
    fn check_items_depth(&self, items: &[Value]) -> Result<(), PickleError> {
        self.check_depth(1 + items.iter().map(Value::depth).max().unwrap_or(0))
    }

    /// Adds `items` to the list on top of the stack.
    fn extend_top(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        self.check_items_depth(&items)?;
        match self.top()? {
            Value::List(values) => {
                values.extend(items);
                Ok(())
            }
            other => {
                let kind = kind(other);
                self.error(format!("appends to a {kind}"))
            }
        }
    }

    /// Adds key-value pairs to the dict on top of the stack.
    fn set_items(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return self.error("an odd number of keys and values");
        }
        self.check_items_depth(&items)?;
        match self.top()? {
            Value::Dict(entries) => {
                // A repeated key stays repeated (Python keeps the last): readers of the
                // dict refuse repeats rather than pick one.
                let mut items = items.into_iter();
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    entries.push((k, v));
                }
                Ok(())
            }
            // Other objects' items (a custom mapping) are kept with their state.
            Value::Object { state, .. } => {
                let old = state.take().map(|s| *s);
                *state = Some(Box::new(Value::Tuple(
                    old.into_iter().chain(items).collect(),
                )));
                Ok(())
            }
            other => {
                let kind = kind(other);
                self.error(format!("sets items of a {kind}"))
            }
        }
    }

    /// Memoizes a copy of the top value. A container is memoized as it is when the opcode
    /// runs (usually empty, before its items): later changes do not reach the copy, unlike
    /// Python's shared object. A state_dict refers back only to complete tuples and tensors.
    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let value = self.top()?.clone();
        self.admit(value.count())?;
        self.memo.insert(key, value);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        let Some(value) = self.memo.get(&key).cloned() else {
            return self.error(format!("memo entry {key} was never stored"));
        };
        self.push(value)
    }

    fn int_from_le(&self, bytes: &[u8]) -> Result<Value, PickleError> {
        if bytes.is_empty() {
            return Ok(Value::Int(0));
        }
        if bytes.len() > 8 {
            // Wider than any count or offset: kept as bytes, for comparison only.
            if bytes.len() > 64 {
                return self.error(format!("an integer of {} bytes", bytes.len()));
            }
            return Ok(Value::Long(bytes.to_vec()));
        }
        let negative = bytes[bytes.len() - 1] & 0x80 != 0;
        let mut full = if negative { [0xff; 8] } else { [0; 8] };
        full[..bytes.len()].copy_from_slice(bytes);
        Ok(Value::Int(i64::from_le_bytes(full)))
    }

    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            self.op_at = self.pos;
            let op = self.u8()?;
            match op {
                // PROTO, FRAME: framing only.
                0x80 => {
                    let version = self.u8()?;
                    if version > 5 {
                        return self.error(format!("pickle protocol {version}"));
                    }
                }
                0x95 => {
                    self.le::<8>()?;
                }
                b'.' => {
                    let value = self.pop()?;
                    return Ok(value);
                }
                b'(' => self.stack.push(Item::Mark),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let value = self.top()?.clone();
                    self.push(value)?;
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.push(Value::Int(v.into()))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v.into()))?
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.push(Value::Int(v.into()))?
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let bytes = self.take(n)?.to_vec();
                    let v = self.int_from_le(&bytes)?;
                    self.push(v)?
                }
                0x8b => {
                    let n = self.len_u32()?;
                    let bytes = self.take(n)?.to_vec();
                    let v = self.int_from_le(&bytes)?;
                    self.push(v)?
                }
                b'I' | b'L' => {
                    let line = self.line()?;
                    let line = line.trim_end_matches('L');
                    let v = match line {
                        "01" => Value::Bool(true),
                        "00" => Value::Bool(false),
                        _ => match line.parse::<i64>() {
                            Ok(v) => Value::Int(v),
                            Err(_) => return self.error(format!("an integer {line:?}")),
                        },
                    };
                    self.push(v)?
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.push(Value::Float(v))?
                }
                b'F' => {
                    let line = self.line()?;
                    match line.parse::<f64>() {
                        Ok(v) => self.push(Value::Float(v))?,
                        Err(_) => return self.error(format!("a float {line:?}")),
                    }
                }
                b'X' => {
                    let n = self.len_u32()?;
                    let s = self.text(n)?;
                    self.push(Value::Str(s))?
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let s = self.text(n)?;
                    self.push(Value::Str(s))?
                }
                0x8d => {
                    let n = self.len_u64()?;
                    let s = self.text(n)?;
                    self.push(Value::Str(s))?
                }
                // Python 2 strings (BINSTRING, SHORT_BINSTRING): bytes, read as text where
                // they are UTF-8, as the names in old checkpoints are.
                b'T' | b'U' => {
                    let n = if op == b'T' {
                        self.len_u32()?
                    } else {
                        self.u8()? as usize
                    };
                    let bytes = self.take(n)?.to_vec();
                    let v = match String::from_utf8(bytes) {
                        Ok(s) => Value::Str(s),
                        Err(e) => Value::Bytes(e.into_bytes()),
                    };
                    self.push(v)?
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.len_u32()?,
                        b'C' => self.u8()? as usize,
                        _ => self.len_u64()?,
                    };
                    let bytes = self.take(n)?.to_vec();
                    self.push(Value::Bytes(bytes))?
                }
                b'V' => {
                    let line = self.line()?;
                    self.push(Value::Str(line))?
                }
                b')' => self.push(Value::Tuple(Vec::new()))?,
                b']' => self.push(Value::List(Vec::new()))?,
                b'}' => self.push(Value::Dict(Vec::new()))?,
                0x8f => self.push(Value::List(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_built(Value::Tuple(items))?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push_built(Value::Tuple(items))?
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push_built(Value::List(items))?
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Dict(Vec::new()))?;
                    self.set_items(items)?
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push_built(Value::List(items))?
                }
                b'a' => {
                    let item = self.pop()?;
                    self.extend_top(vec![item])?
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    self.extend_top(items)?
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.set_items(vec![key, value])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global { module, name })?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(module), Value::Str(name)) = (module, name) else {
                        return self.error("STACK_GLOBAL of values that are not strings");
                    };
                    self.push(Value::Global { module, name })?
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let value = reduce(callable, args);
                    self.push_built(value)?
                }
                0x92 => {
                    let kwargs = self.pop()?;
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let args = Value::Tuple(vec![args, kwargs]);
                    self.push_built(Value::Object {
                        callable: Box::new(callable),
                        args: Box::new(args),
                        state: None,
                    })?
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.pop()?;
                    let value = match target {
                        // A dict's BUILD state is its attributes (a state_dict's
                        // `_metadata`), not items.
                        Value::Dict(_) => target,
                        Value::Object { callable, args, .. } => Value::Object {
                            callable,
                            args,
                            state: Some(Box::new(state)),
                        },
                        other => Value::Object {
                            callable: Box::new(other),
                            args: Box::new(Value::Tuple(Vec::new())),
                            state: Some(Box::new(state)),
                        },
                    };
                    self.push_built(value)?
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.push_built(Value::Persistent(Box::new(pid)))?
                }
                b'P' => {
                    let line = self.line()?;
                    self.push(Value::Persistent(Box::new(Value::Str(line))))?
                }
                b'q' => {
                    let key = self.u8()?;
                    self.memo_put(key.into())?
                }
                b'r' => {
                    let key = u32::from_le_bytes(self.le()?);
                    self.memo_put(key.into())?
                }
                0x94 => {
                    let key = self.memo.len() as u64;
                    self.memo_put(key)?
                }
                b'p' => {
                    let line = self.line()?;
                    match line.parse::<u64>() {
                        Ok(key) => self.memo_put(key)?,
                        Err(_) => return self.error(format!("a memo key {line:?}")),
                    }
                }
                b'h' => {
                    let key = self.u8()?;
                    self.memo_get(key.into())?
                }
                b'j' => {
                    let key = u32::from_le_bytes(self.le()?);
                    self.memo_get(key.into())?
                }
                b'g' => {
                    let line = self.line()?;
                    match line.parse::<u64>() {
                        Ok(key) => self.memo_get(key)?,
                        Err(_) => return self.error(format!("a memo key {line:?}")),
                    }
                }
                other => {
                    return self.error(format!(
                        "opcode 0x{other:02x}, which a torch.save pickle does not use"
                    ));
                }
            }
        }
    }
}

/// What `callable(*args)` gives, for the few calls a state_dict needs; any other call is
/// kept as an inert object.
fn reduce(callable: Value, args: Value) -> Value {
    match (callable.global_name().as_deref(), args) {
        // `OrderedDict()`: its items follow as SETITEMS.
        (Some("collections.OrderedDict"), Value::Tuple(items)) if items.is_empty() => {
            Value::Dict(Vec::new())
        }
        (_, args) => Value::Object {
            callable: Box::new(callable),
            args: Box::new(args),
            state: None,
        },
    }
}

/// A value's kind, for errors.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::Long(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) => "str",
        Value::Bytes(_) => "bytes",
        Value::Tuple(_) => "tuple",
        Value::List(_) => "list",
        Value::Dict(_) => "dict",
        Value::Global { .. } => "global",
        Value::Persistent(_) => "persistent id",
        Value::Object { .. } => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_value(bytes: &[u8]) -> Result<Value, PickleError> {
        read(bytes).map(|(v, _)| v)
    }

    /// `pickle.dumps(collections.OrderedDict([("a", 1), ("b", [2.5, None])]), protocol=2)`,
    /// written out opcode by opcode.
    #[test]
    fn reads_an_ordered_dict_as_python_writes_it() {
        let mut p = vec![0x80, 2];
        p.extend(b"ccollections\nOrderedDict\nq\x00)R");
        p.extend(b"q\x01(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00b]q\x02(G");
        p.extend(2.5f64.to_be_bytes());
        p.extend(b"Neu.");
        let v = read_value(&p).unwrap();
        assert_eq!(
            v,
            Value::Dict(vec![
                (Value::Str("a".into()), Value::Int(1)),
                (
                    Value::Str("b".into()),
                    Value::List(vec![Value::Float(2.5), Value::None])
                ),
            ])
        );
    }

    #[test]
    fn unknown_calls_are_kept_not_run() {
        // os.system("echo pwned")
        let p = b"\x80\x02cos\nsystem\nX\x0a\x00\x00\x00echo pwned\x85R.";
        let v = read_value(p).unwrap();
        let Value::Object { callable, args, .. } = v else {
            panic!("expected an inert object, got {v:?}");
        };
        assert_eq!(callable.global_name().as_deref(), Some("os.system"));
        assert_eq!(*args, Value::Tuple(vec![Value::Str("echo pwned".into())]));
    }

    #[test]
    fn integers_of_every_width() {
        let mut p = b"\x80\x02(J\xff\xff\xff\xffK\xffM\x00\x01\x8a\x01\x80\x8a\x08".to_vec();
        p.extend(i64::MIN.to_le_bytes());
        p.extend(b"\x8a\x00t.");
        let v = read_value(&p).unwrap();
        assert_eq!(
            v,
            Value::Tuple(vec![
                Value::Int(-1),
                Value::Int(255),
                Value::Int(256),
                Value::Int(-128),
                Value::Int(i64::MIN),
                Value::Int(0),
            ])
        );
        let wide = b"\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.";
        assert_eq!(
            read_value(wide).unwrap(),
            Value::Long(vec![0, 0, 0, 0, 0, 0, 0, 0, 1])
        );
        let mut too_wide = b"\x80\x02\x8a\x41".to_vec();
        too_wide.extend([1; 0x41]);
        too_wide.push(b'.');
        assert!(
            read_value(&too_wide)
                .unwrap_err()
                .message
                .contains("65 bytes")
        );
    }

    #[test]
    fn truncated_and_malformed_pickles_are_errors() {
        for (bytes, expected) in [
            (&b"\x80\x02X\xff\x00\x00\x00ab"[..], "needs 255 more bytes"),
            (&b"\x80\x02}q\x00"[..], "needs 1 more bytes"),
            (&b"\x80\x02h\x07."[..], "memo entry 7"),
            (&b"\x80\x02K\x01a."[..], "no value"),
            (&b"\x80\x02]K\x01K\x02u."[..], "no mark"),
            (&b"\x80\x02}(K\x01u."[..], "odd number"),
            (&b"\x80\x02K\x01K\x02s."[..], "no value on the stack"),
            (&b"\x80\x02K\x01K\x02K\x03s."[..], "sets items of a int"),
            (&b"\x80\x02\xff."[..], "opcode 0xff"),
            (&b"\x80\x09."[..], "protocol 9"),
            (&b"."[..], "empty stack"),
        ] {
            let e = read_value(bytes).unwrap_err();
            assert!(e.message.contains(expected), "{bytes:?}: {e}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_before_it_can_overflow_the_stack() {
        // ]]]]... each list appended into the one below it.
        let mut p = vec![0x80, 2];
        p.extend(std::iter::repeat_n(b']', 100_000));
        p.extend(std::iter::repeat_n(b'a', 99_999));
        p.push(b'.');
        let e = read_value(&p).unwrap_err();
        assert!(e.message.contains("more than 64 deep"), "{e}");
    }

    #[test]
    fn memo_copies_cannot_expand_without_bound() {
        // A list of 1000 ints, memoized; then lists of 1000 copies of the previous one.
        let mut p = vec![0x80, 2, b']', b'('];
        p.extend(std::iter::repeat_n(&b"K\x01"[..], 1000).flatten());
        p.extend(b"eq\x00");
        for level in 0..3u8 {
            p.extend(b"](");
            p.extend(std::iter::repeat_n([b'h', level], 1000).flatten());
            p.extend([b'e', b'q', level + 1]);
        }
        p.push(b'.');
        let e = read_value(&p).unwrap_err();
        assert!(e.message.contains("more than 4000000 values"), "{e}");
    }
}
