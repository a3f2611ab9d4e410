//! Go's template built-ins (`text/template/funcs.go`) and the consul-template functions
//! we support, with their Go parameter types so argument checking fails the way Go's
//! reflection-based calls do.

use std::rc::Rc;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::TemplateError;
use super::exec::State;
use super::gofmt::{self, quote};
use super::gojson;
use super::value::{Value, secret_from_response};

/// A function parameter's Go type, as far as argument checking needs it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum P {
    /// `string`
    Str,
    /// `interface{}`
    Any,
    /// `reflect.Value` (the built-ins take anything, including "no value")
    RVal,
    /// `[]string`
    StrSlice,
}

impl P {
    pub(crate) fn go_name(self) -> &'static str {
        match self {
            P::Str => "string",
            P::Any => "interface {}",
            P::RVal => "reflect.Value",
            P::StrSlice => "[]string",
        }
    }
}

pub(crate) enum CallError {
    /// The function returned an error: reported as `error calling NAME: …`.
    Call(String),
    /// A limit of the render itself was hit.
    Abort(TemplateError),
}

impl From<String> for CallError {
    fn from(s: String) -> Self {
        CallError::Call(s)
    }
}

impl From<&str> for CallError {
    fn from(s: &str) -> Self {
        CallError::Call(s.to_string())
    }
}

type Res = Result<Value, CallError>;
pub(crate) type Imp_ = fn(&mut State<'_, '_>, Vec<Value>) -> Res;

pub(crate) enum Imp {
    /// `and` (false) and `or` (true) short-circuit, so the executor runs them.
    AndOr(bool),
    F(Imp_),
}

pub(crate) struct Func {
    pub name: &'static str,
    pub fixed: &'static [P],
    pub variadic: Option<P>,
    pub imp: Imp,
}

use P::{Any, RVal, Str, StrSlice};

const fn f(name: &'static str, fixed: &'static [P], variadic: Option<P>, imp: Imp_) -> Func {
    Func {
        name,
        fixed,
        variadic,
        imp: Imp::F(imp),
    }
}

static FUNCS: &[Func] = &[
    // Go built-ins.
    Func {
        name: "and",
        fixed: &[RVal],
        variadic: Some(RVal),
        imp: Imp::AndOr(false),
    },
    Func {
        name: "or",
        fixed: &[RVal],
        variadic: Some(RVal),
        imp: Imp::AndOr(true),
    },
    f("not", &[RVal], None, not),
    f("eq", &[RVal], Some(RVal), eq_fn),
    f("ne", &[RVal, RVal], None, ne_fn),
    f("lt", &[RVal, RVal], None, lt_fn),
    f("le", &[RVal, RVal], None, le_fn),
    f("gt", &[RVal, RVal], None, gt_fn),
    f("ge", &[RVal, RVal], None, ge_fn),
    f("len", &[RVal], None, len_fn),
    f("index", &[RVal], Some(RVal), index_fn),
    f("slice", &[RVal], Some(RVal), slice_fn),
    f("print", &[], Some(Any), |_, a| {
        Ok(Value::str(&gofmt::sprint(&a)))
    }),
    f("println", &[], Some(Any), |_, a| {
        Ok(Value::str(&gofmt::sprintln(&a)))
    }),
    f("printf", &[Str], Some(Any), printf),
    f("html", &[], Some(Any), |_, a| {
        Ok(Value::str(&html_escape(&eval_args(&a))))
    }),
    f("js", &[], Some(Any), |_, a| {
        Ok(Value::str(&js_escape(&eval_args(&a))))
    }),
    f("urlquery", &[], Some(Any), |_, a| {
        Ok(Value::str(&query_escape(&eval_args(&a))))
    }),
    // consul-template.
    f("secret", &[], Some(Str), secret),
    f("toJSON", &[Any], None, |_, a| {
        Ok(Value::str(&gojson::marshal(&a[0], true)))
    }),
    f("toJSONPretty", &[Any], None, |_, a| {
        Ok(Value::str(&gojson::marshal_indent(&a[0], true)))
    }),
    f("toUnescapedJSON", &[Any], None, |_, a| {
        Ok(Value::str(&gojson::marshal(&a[0], false)))
    }),
    f("toUnescapedJSONPretty", &[Any], None, |_, a| {
        Ok(Value::str(&gojson::marshal_indent(&a[0], false)))
    }),
    f("base64Encode", &[Str], None, |_, a| {
        Ok(Value::str(&STD.encode(s0(&a).as_bytes())))
    }),
    f("base64Decode", &[Str], None, |_, a| {
        b64_decode(&STD, "base64Decode", s0(&a))
    }),
    f("base64URLEncode", &[Str], None, |_, a| {
        Ok(Value::str(&URL.encode(s0(&a).as_bytes())))
    }),
    f("base64URLDecode", &[Str], None, |_, a| {
        b64_decode(&URL, "base64URLDecode", s0(&a))
    }),
    f("env", &[Str], None, |st, a| {
        Ok(Value::str(&(st.opts.env)(s0(&a)).unwrap_or_default()))
    }),
    f("toUpper", &[Str], None, |_, a| {
        Ok(Value::str(&to_upper(s0(&a))))
    }),
    f("toLower", &[Str], None, |_, a| {
        Ok(Value::str(&to_lower(s0(&a))))
    }),
    f("replaceAll", &[Str, Str, Str], None, replace_all),
    f("trimSpace", &[Str], None, |_, a| {
        Ok(Value::str(s0(&a).trim()))
    }),
    f("trimPrefix", &[Str, Str], None, |_, a| {
        let (p, s) = (sn(&a, 0), sn(&a, 1));
        Ok(Value::str(s.strip_prefix(p).unwrap_or(s)))
    }),
    f("trimSuffix", &[Str, Str], None, |_, a| {
        let (p, s) = (sn(&a, 0), sn(&a, 1));
        Ok(Value::str(s.strip_suffix(p).unwrap_or(s)))
    }),
    f("split", &[Str, Str], None, split),
    f("join", &[Str, StrSlice], None, join),
    f("contains", &[Any, Any], None, |_, a| {
        Ok(Value::Bool(contains(&a[1], &a[0])))
    }),
];

pub(crate) fn lookup(name: &str) -> Option<&'static Func> {
    FUNCS.iter().find(|f| f.name == name)
}

pub(crate) fn is_function(name: &str) -> bool {
    lookup(name).is_some()
}

/// consul-template's path clean-up: surrounding spaces and slashes go.
pub(crate) fn normalize_secret_path(p: &str) -> String {
    p.trim().trim_matches('/').to_string()
}

fn sn(a: &[Value], i: usize) -> &str {
    a.get(i).and_then(Value::as_go_string).unwrap_or_default()
}

fn s0(a: &[Value]) -> &str {
    sn(a, 0)
}

// -- consul-template functions ------------------------------------------------------------

fn secret(st: &mut State<'_, '_>, a: Vec<Value>) -> Res {
    let Some(path) = a.first().and_then(Value::as_go_string) else {
        return Ok(Value::Nil);
    };
    let mut writes = false;
    for kv in a[1..].iter().filter_map(Value::as_go_string) {
        if kv.is_empty() {
            continue;
        }
        if !kv.contains('=') {
            return Err(format!("not k=v pair {}", quote(kv, false)).into());
        }
        writes = true;
    }
    if writes {
        return Err(format!(
            "the write form of secret (secret {} \"k=v\" …) is not supported by the secretvault \
             agent; read the secret with secret {} alone",
            quote(path, false),
            quote(path, false)
        )
        .into());
    }
    let path = normalize_secret_path(path);
    if path.is_empty() {
        return Err(format!("vault.read: invalid format: {}", quote(&path, false)).into());
    }
    if let Some(v) = st.cache.get(&path) {
        return Ok(v.clone());
    }
    let resp = st
        .source
        .secret(&path)
        .map_err(|e| format!("vault.read({path}): {e}"))?;
    let secret = secret_from_response(&resp).map_err(|e| format!("vault.read({path}): {e}"))?;
    let v = Value::Secret(Rc::new(secret));
    st.cache.insert(path, v.clone());
    Ok(v)
}

const fn engine_config() -> GeneralPurposeConfig {
    // Go's decoder accepts non-zero trailing bits and requires padding.
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
}
static STD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, engine_config());
static URL: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, engine_config());

fn b64_decode(engine: &GeneralPurpose, name: &str, s: &str) -> Res {
    // Go's decoder skips \r and \n wherever they appear.
    let cleaned: String = s.chars().filter(|&c| c != '\r' && c != '\n').collect();
    let bytes = engine.decode(cleaned.as_bytes()).map_err(|e| {
        let at = match e {
            base64::DecodeError::InvalidByte(i, _)
            | base64::DecodeError::InvalidLastSymbol(i, _) => i,
            base64::DecodeError::InvalidLength(n) => n,
            base64::DecodeError::InvalidPadding => cleaned.len(),
        };
        format!("{name}: illegal base64 data at input byte {at}")
    })?;
    match String::from_utf8(bytes) {
        Ok(s) => Ok(Value::str(&s)),
        Err(_) => Err(format!(
            "{name}: the decoded data is not UTF-8 text, which the secretvault agent cannot \
             render into a template"
        )
        .into()),
    }
}

/// Go's `strings.ToUpper`: per-rune simple case mapping (ß stays ß).
fn to_upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// Go's `strings.ToLower`: per-rune simple case mapping (no final-sigma rule).
fn to_lower(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '\u{130}' {
                return 'i';
            }
            let mut low = c.to_lowercase();
            match (low.next(), low.next()) {
                (Some(l), None) => l,
                _ => c,
            }
        })
        .collect()
}

fn replace_all(st: &mut State<'_, '_>, a: Vec<Value>) -> Res {
    let (from, to, s) = (sn(&a, 0), sn(&a, 1), sn(&a, 2));
    let count = if from.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(from).count()
    };
    let len = (s.len() - count * from.len()).saturating_add(count.saturating_mul(to.len()));
    if len > st.max_string() {
        return Err(format!("the result would be {len} bytes, more than the output limit").into());
    }
    Ok(Value::str(&s.replace(from, to)))
}

fn split(_: &mut State<'_, '_>, a: Vec<Value>) -> Res {
    let (sep, s) = (sn(&a, 0), sn(&a, 1).trim());
    let parts: Vec<String> = if s.is_empty() {
        Vec::new()
    } else if sep.is_empty() {
        s.chars().map(String::from).collect()
    } else {
        s.split(sep).map(str::to_string).collect()
    };
    Ok(Value::StrList(Rc::new(parts)))
}

fn join(st: &mut State<'_, '_>, a: Vec<Value>) -> Res {
    let sep = s0(&a);
    let Some(Value::StrList(l)) = a.get(1) else {
        return Ok(Value::str(""));
    };
    let len = l.iter().map(String::len).sum::<usize>() + sep.len() * l.len().saturating_sub(1);
    if len > st.max_string() {
        return Err(format!("the result would be {len} bytes, more than the output limit").into());
    }
    Ok(Value::str(&l.join(sep)))
}

/// consul-template's `in(l, v)`: element or substring membership with Go type equality.
fn contains(l: &Value, v: &Value) -> bool {
    let same = |e: &Value| match (e, v) {
        (Value::Int(a) | Value::Int64(a), Value::Int(b) | Value::Int64(b)) => a == b,
        (Value::Float(a), Value::Float(b)) => a == b,
        (Value::Str(a), Value::Str(b)) | (Value::Number(a), Value::Number(b)) => a == b,
        _ => false,
    };
    match l {
        Value::List(items) => items.iter().any(same),
        Value::StrList(items) => items.iter().any(|e| same(&Value::str(e))),
        Value::Str(s) => matches!(v, Value::Str(sub) if s.contains(&**sub)),
        Value::Number(s) => matches!(v, Value::Number(sub) if s.contains(&**sub)),
        _ => false,
    }
}

// -- Go built-ins -----------------------------------------------------------------------

/// Go's `indirectInterface`: a nil interface is no value at all.
fn ind(v: &Value) -> &Value {
    match v {
        Value::Nil => &Value::Invalid,
        v => v,
    }
}

fn not(_: &mut State<'_, '_>, a: Vec<Value>) -> Res {
    Ok(Value::Bool(!a.first().is_some_and(Value::truth)))
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Kind {
    Invalid,
    Bool,
    Int,
    Float,
    String,
}

fn basic_kind(v: &Value) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) | Value::Int64(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) | Value::Number(_) => Kind::String,
        _ => Kind::Invalid,
    }
}

/// reflect.Kind for the non-basic values, to decide comparability.
fn reflect_kind(v: &Value) -> &'static str {
    match v {
        Value::Invalid | Value::Nil => "invalid",
        Value::Map(_) => "map",
        Value::List(_) | Value::StrList(_) => "slice",
        Value::Secret(_) | Value::Auth(_) | Value::NilPtr(_) => "ptr",
        _ => "basic",
    }
}

fn is_nil(v: &Value) -> bool {
    matches!(v, Value::Invalid | Value::Nil | Value::NilPtr(_))
}

fn eq(a1: &Value, rest: &[Value]) -> Result<bool, String> {
    let a1 = ind(a1);
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let k1 = basic_kind(a1);
    for a in rest {
        let a = ind(a);
        let k2 = basic_kind(a);
        let truth = if k1 != k2 {
            if !matches!(a1, Value::Invalid) && !matches!(a, Value::Invalid) {
                return Err(format!(
                    "incompatible types for comparison: {} and {}",
                    a1.type_name(),
                    a.type_name()
                ));
            }
            false
        } else {
            match (a1, a) {
                (Value::Bool(x), Value::Bool(y)) => x == y,
                _ if k1 == Kind::Int => a1.as_int() == a.as_int(),
                (Value::Float(x), Value::Float(y)) => x == y,
                _ if k1 == Kind::String => a1.as_go_string() == a.as_go_string(),
                _ => {
                    let (r1, r2) = (reflect_kind(a1), reflect_kind(a));
                    if r1 != r2 && r1 != "invalid" && r2 != "invalid" {
                        return Err(format!(
                            "non-comparable types {}: {}, {}: {}",
                            gofmt::sprintf("%s", std::slice::from_ref(a1)),
                            a1.type_name(),
                            a.type_name(),
                            gofmt::sprintf("%v", std::slice::from_ref(a)),
                        ));
                    }
                    if is_nil(a1) || is_nil(a) {
                        is_nil(a1) == is_nil(a)
                    } else {
                        match (a1, a) {
                            (Value::Secret(x), Value::Secret(y)) => Rc::ptr_eq(x, y),
                            (Value::Auth(x), Value::Auth(y)) => Rc::ptr_eq(x, y),
                            _ => {
                                return Err(format!(
                                    "non-comparable type {}: {}",
                                    gofmt::sprintf("%s", std::slice::from_ref(a)),
                                    a.type_name()
                                ));
                            }
                        }
                    }
                }
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

fn lt(a1: &Value, a2: &Value) -> Result<bool, String> {
    let (a1, a2) = (ind(a1), ind(a2));
    let (k1, k2) = (basic_kind(a1), basic_kind(a2));
    if k1 == Kind::Invalid || k2 == Kind::Invalid {
        return Err("invalid type for comparison".into());
    }
    if k1 != k2 {
        return Err(format!(
            "incompatible types for comparison: {} and {}",
            a1.type_name(),
            a2.type_name()
        ));
    }
    Ok(match (a1, a2) {
        _ if k1 == Kind::Int => a1.as_int() < a2.as_int(),
        (Value::Float(x), Value::Float(y)) => x < y,
        _ if k1 == Kind::String => a1.as_go_string() < a2.as_go_string(),
        _ => return Err("invalid type for comparison".into()),
    })
}

fn le(a1: &Value, a2: &Value) -> Result<bool, String> {
    if lt(a1, a2)? {
        return Ok(true);
    }
    eq(a1, std::slice::from_ref(a2))
}

fn eq_fn(_: &mut State<'_, '_>, a: Vec<Value>) -> Res {
    Ok(Value::Bool(eq(&a[0], &a[1..])?))
}
fn ne_fn(_: &mut State<'_, '_>, a: Vec<Value>) -> Res {
    Ok(Value::Bool(!eq(&a[0], &a[1..2])?))
}
fn lt_fn(_: &mut State<'_, '_>, a: Vec<Value>) -> Res {
    Ok(Value::Bool(lt(&a[0], &a[1])?))
}
fn le_fn(_: &mut State<'_, '_>, a: Vec<Value>) -> Res {
    Ok(Value::Bool(le(&a[0], &a[1])?))
}
fn gt_fn(_: &mut State<'_, '_>, a: Vec<Value>) -> Res {
    Ok(Value::Bool(!le(&a[0], &a[1])?))
}
fn ge_fn(_: &mut State<'_, '_>, a: Vec<Value>) -> Res {
    Ok(Value::Bool(!lt(&a[0], &a[1])?))
}

/// The type name Go's reflection gives a value after dereferencing a pointer.
fn elem_type_name(v: &Value) -> &'static str {
    match v {
        Value::Secret(_) => "dependency.Secret",
        Value::Auth(_) => "dependency.SecretAuth",
        v => v.type_name(),
    }
}

fn len_fn(_: &mut State<'_, '_>, a: Vec<Value>) -> Res {
    Ok(Value::Int(match &a[0] {
        Value::Nil | Value::NilPtr(_) => return Err("len of nil pointer".to_string().into()),
        Value::Invalid => {
            return Err("reflect: call of reflect.Value.Type on zero Value"
                .to_string()
                .into());
        }
        Value::Str(s) | Value::Number(s) => s.len() as i64,
        Value::Map(m) => m.len() as i64,
        Value::List(l) => l.len() as i64,
        Value::StrList(l) => l.len() as i64,
        v => return Err(format!("len of type {}", elem_type_name(v)).into()),
    }))
}

fn index_arg(idx: &Value, cap: usize) -> Result<usize, String> {
    match ind(idx) {
        Value::Int(x) | Value::Int64(x) => {
            if *x < 0 || *x as u64 > cap as u64 {
                Err(format!("index out of range: {x}"))
            } else {
                Ok(*x as usize)
            }
        }
        Value::Invalid => Err("cannot index slice/array with nil".into()),
        v => Err(format!(
            "cannot index slice/array with type {}",
            v.type_name()
        )),
    }
}

fn index_fn(_: &mut State<'_, '_>, a: Vec<Value>) -> Res {
    let mut item = ind(&a[0]).clone();
    if let Value::Invalid = item {
        return Err("index of untyped nil".to_string().into());
    }
    for idx in &a[1..] {
        item = match &item {
            Value::Nil | Value::NilPtr(_) => return Err("index of nil pointer".to_string().into()),
            Value::List(l) => {
                let x = index_arg(idx, l.len())?;
                l.get(x)
                    .cloned()
                    .ok_or("reflect: slice index out of range")?
            }
            Value::StrList(l) => {
                let x = index_arg(idx, l.len())?;
                Value::str(l.get(x).ok_or("reflect: slice index out of range")?)
            }
            Value::Str(s) | Value::Number(s) => {
                let x = index_arg(idx, s.len())?;
                Value::Int(i64::from(
                    *s.as_bytes()
                        .get(x)
                        .ok_or("reflect: string index out of range")?,
                ))
            }
            Value::Map(m) => match ind(idx) {
                Value::Str(k) => m.get(&**k).cloned().unwrap_or(Value::Nil),
                Value::Invalid => {
                    return Err("value is nil; should be of type string".to_string().into());
                }
                k => {
                    return Err(
                        format!("value has type {}; should be string", k.type_name()).into(),
                    );
                }
            },
            v => return Err(format!("can't index item of type {}", elem_type_name(v)).into()),
        };
    }
    Ok(item)
}

fn slice_fn(_: &mut State<'_, '_>, a: Vec<Value>) -> Res {
    let item = ind(&a[0]).clone();
    if let Value::Invalid = item {
        return Err("slice of untyped nil".to_string().into());
    }
    let idxs = &a[1..];
    if idxs.len() > 3 {
        return Err(format!("too many slice indexes: {}", idxs.len()).into());
    }
    let len = match &item {
        Value::Str(s) | Value::Number(s) => {
            if idxs.len() == 3 {
                return Err("cannot 3-index slice a string".to_string().into());
            }
            s.len()
        }
        Value::List(l) => l.len(),
        Value::StrList(l) => l.len(),
        v => return Err(format!("can't slice item of type {}", v.type_name()).into()),
    };
    let mut idx = [0, len, len];
    for (i, x) in idxs.iter().enumerate() {
        idx[i] = index_arg(x, len)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]).into());
    }
    if idxs.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]).into());
    }
    let (i, j) = (idx[0], idx[1]);
    Ok(match &item {
        Value::Str(s) | Value::Number(s) => {
            let sub = s.get(i..j).ok_or(
                "slice: the indexes cut a multi-byte UTF-8 character, which the secretvault \
                 agent cannot render",
            )?;
            if let Value::Number(_) = item {
                Value::Number(Rc::from(sub))
            } else {
                Value::str(sub)
            }
        }
        Value::List(l) => Value::List(Rc::new(l[i..j].to_vec())),
        Value::StrList(l) => Value::StrList(Rc::new(l[i..j].to_vec())),
        _ => Value::Invalid,
    })
}

fn printf(st: &mut State<'_, '_>, a: Vec<Value>) -> Res {
    let out = gofmt::sprintf(s0(&a), &a[1..]);
    if out.len() > st.max_string() {
        return Err(CallError::Abort(
            st.errorf("printf result exceeds the output limit"),
        ));
    }
    Ok(Value::str(&out))
}

/// Go's `evalArgs` for html, js and urlquery.
fn eval_args(a: &[Value]) -> String {
    if let [Value::Str(s)] = a {
        return s.to_string();
    }
    let printable: Vec<Value> = a
        .iter()
        .map(|v| match v {
            Value::Invalid => Value::str("<no value>"),
            Value::Secret(_) | Value::Auth(_) => Value::str(&gofmt::print_value(v)),
            v => v.clone(),
        })
        .collect();
    gofmt::sprint(&printable)
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{FFFD}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if (c as u32) < 0x80 || gofmt::is_print(c) => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
