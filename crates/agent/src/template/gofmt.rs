//! Go's `fmt` and `strconv` formatting for the values a template can hold: `%v` printing
//! of maps, slices and structs, `Sprint`/`Sprintln`/`Sprintf`, float formatting and
//! `strconv.Quote`. Output must match Go byte for byte, so the rules here follow Go's
//! `fmt/print.go`, `fmt/format.go` and `strconv/ftoa.go`.

use super::value::{SECRET_FIELDS, Secret, SecretAuth, Value};

/// Width and precision beyond this are refused, as Go's `fmt` does (`%!(BADWIDTH)`).
const TOO_LARGE: usize = 1_000_000;

#[derive(Clone, Copy, Default)]
struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    plus_v: bool,
    wid: Option<usize>,
    prec: Option<usize>,
}

// ---------------------------------------------------------------------------------------
// Floats

/// Decimal digits and decimal-point position of |f| (value = 0.d1d2… × 10^dp), either the
/// shortest that round-trips (`sig == None`) or correctly rounded to `sig` digits.
fn float_digits(f: f64, sig: Option<usize>) -> (Vec<u8>, i32) {
    let f = f.abs();
    if f == 0.0 {
        return (Vec::new(), 0);
    }
    let s = match sig {
        None => format!("{f:e}"),
        Some(n) => format!("{:.*e}", n.saturating_sub(1), f),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let digits: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    (digits, exp + 1)
}

fn trim_zeros(mut d: Vec<u8>) -> Vec<u8> {
    while d.last() == Some(&b'0') {
        d.pop();
    }
    d
}

/// strconv's %e layout for the given digits.
fn fmt_e(out: &mut String, digits: &[u8], dp: i32, prec: usize, e: char) {
    out.push(digits.first().map_or('0', |&c| c as char));
    if prec > 0 {
        out.push('.');
        let mut i = 1;
        let m = digits.len().min(prec + 1);
        if i < m {
            out.extend(digits[i..m].iter().map(|&c| c as char));
            i = m;
        }
        while i <= prec {
            out.push('0');
            i += 1;
        }
    }
    out.push(e);
    let exp = if digits.is_empty() { 0 } else { dp - 1 };
    out.push(if exp < 0 { '-' } else { '+' });
    let exp = exp.unsigned_abs();
    if exp < 10 {
        out.push('0');
    }
    out.push_str(&exp.to_string());
}

/// strconv's %f layout for the given digits.
fn fmt_f(out: &mut String, digits: &[u8], dp: i32, prec: usize) {
    if dp > 0 {
        let dp = dp as usize;
        let m = digits.len().min(dp);
        out.extend(digits[..m].iter().map(|&c| c as char));
        for _ in m..dp {
            out.push('0');
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            let j = i64::from(dp) + i as i64 - 1;
            let c = if j >= 0 && (j as usize) < digits.len() {
                digits[j as usize]
            } else {
                b'0'
            };
            out.push(c as char);
        }
    }
}

/// `strconv.FormatFloat(f, verb, prec, 64)` for verbs e E f F g G; `prec == None` is -1.
pub(crate) fn format_float(f: f64, verb: char, prec: Option<usize>) -> String {
    let mut out = String::new();
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f.is_sign_negative() {
        out.push('-');
    }
    match verb {
        'e' | 'E' => {
            let (d, dp) = float_digits(f, prec.map(|p| p + 1));
            let p = prec.unwrap_or(d.len().saturating_sub(1));
            fmt_e(&mut out, &d, dp, p, verb);
        }
        'f' | 'F' => match prec {
            Some(p) => out.push_str(&format!("{:.*}", p, f.abs())),
            None => {
                let (d, dp) = float_digits(f, None);
                let p = (d.len() as i32 - dp).max(0) as usize;
                fmt_f(&mut out, &d, dp, p);
            }
        },
        _ => {
            // 'g' / 'G', following strconv's %e-or-%f choice.
            let shortest = prec.is_none();
            let (d, dp, mut p) = match prec {
                None => {
                    let (d, dp) = float_digits(f, None);
                    let n = d.len() as i32;
                    (d, dp, n)
                }
                Some(p) => {
                    let p = p.max(1);
                    let (d, dp) = float_digits(f, Some(p));
                    (trim_zeros(d), dp, p as i32)
                }
            };
            let nd = d.len() as i32;
            let mut eprec = p;
            if eprec > nd && nd >= dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = dp - 1;
            let e = if verb == 'G' { 'E' } else { 'e' };
            if exp < -4 || exp >= eprec {
                if p > nd {
                    p = nd;
                }
                fmt_e(&mut out, &d, dp, (p - 1).max(0) as usize, e);
            } else {
                if p > dp {
                    p = nd;
                }
                fmt_f(&mut out, &d, dp, (p - dp).max(0) as usize);
            }
        }
    }
    out
}

/// How Go's `encoding/json` writes a float64.
pub(crate) fn json_float(f: f64) -> String {
    let abs = f.abs();
    let exp_form = abs != 0.0 && !(1e-6..1e21).contains(&abs);
    let mut s = format_float(f, if exp_form { 'e' } else { 'f' }, None);
    if exp_form {
        // Go rewrites e-07 as e-7.
        let b = s.as_bytes();
        let n = b.len();
        if n >= 4 && b[n - 4] == b'e' && b[n - 3] == b'-' && b[n - 2] == b'0' {
            s.remove(n - 2);
        }
    }
    s
}

// ---------------------------------------------------------------------------------------
// Quoting

/// An approximation of Go's `unicode.IsPrint` without Unicode tables: letters, marks,
/// numbers, punctuation, symbols and U+0020 are printable; controls, other spaces, the
/// common format characters, private-use code points and noncharacters are not.
pub(crate) fn is_print(c: char) -> bool {
    let u = c as u32;
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let format_char = matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F);
    let private_or_nonchar = matches!(u, 0xE000..=0xF8FF | 0xF0000..=0x10FFFF | 0xFDD0..=0xFDEF)
        || (u & 0xFFFE) == 0xFFFE;
    !(format_char || private_or_nonchar)
}

fn push_escaped_rune(out: &mut String, c: char, quote: char, ascii_only: bool) {
    if c == quote || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if ascii_only {
        if (c as u32) < 0x80 && is_print(c) {
            out.push(c);
            return;
        }
    } else if is_print(c) {
        out.push(c);
        return;
    }
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// `strconv.Quote` (or `QuoteToASCII`).
pub(crate) fn quote(s: &str, ascii_only: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_escaped_rune(&mut out, c, '"', ascii_only);
    }
    out.push('"');
    out
}

fn quote_rune(c: char, ascii_only: bool) -> String {
    let mut out = String::from("'");
    push_escaped_rune(&mut out, c, '\'', ascii_only);
    out.push('\'');
    out
}

fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{FEFF}' && (c == '\t' || !c.is_control()))
}

// ---------------------------------------------------------------------------------------
// Printing

struct Printer {
    buf: String,
    f: Flags,
}

fn rune_count(s: &str) -> usize {
    s.chars().count()
}

impl Printer {
    fn new() -> Self {
        Printer {
            buf: String::new(),
            f: Flags::default(),
        }
    }

    fn padding(&mut self, n: usize, zero: bool) {
        let c = if zero { '0' } else { ' ' };
        self.buf.extend(std::iter::repeat_n(c, n));
    }

    /// Go's `fmt.pad`: spaces to the requested width (strings never zero-pad).
    fn pad(&mut self, s: &str) {
        let width = self.f.wid.unwrap_or(0);
        let n = rune_count(s);
        if width <= n {
            self.buf.push_str(s);
        } else if self.f.minus {
            self.buf.push_str(s);
            self.padding(width - n, false);
        } else {
            self.padding(width - n, false);
            self.buf.push_str(s);
        }
    }

    fn truncate<'s>(&self, s: &'s str) -> &'s str {
        match self.f.prec {
            Some(p) => match s.char_indices().nth(p) {
                Some((i, _)) => &s[..i],
                None => s,
            },
            None => s,
        }
    }

    fn fmt_string(&mut self, s: &str, verb: char, v: &Value) {
        match verb {
            'v' | 's' => {
                let t = self.truncate(s).to_string();
                self.pad(&t);
            }
            'x' | 'X' => self.fmt_sx(s, verb == 'X'),
            'q' => {
                let t = self.truncate(s);
                let q = if self.f.sharp && can_backquote(t) {
                    format!("`{t}`")
                } else {
                    quote(t, self.f.plus)
                };
                self.pad(&q);
            }
            _ => self.bad_verb(verb, v),
        }
    }

    fn fmt_sx(&mut self, s: &str, upper: bool) {
        let bytes = s.as_bytes();
        let n = self.f.prec.map_or(bytes.len(), |p| p.min(bytes.len()));
        let mut out = String::new();
        for (i, b) in bytes[..n].iter().enumerate() {
            if i > 0 && self.f.space {
                out.push(' ');
            }
            if self.f.sharp && (i == 0 || self.f.space) {
                out.push_str(if upper { "0X" } else { "0x" });
            }
            if upper {
                out.push_str(&format!("{b:02X}"));
            } else {
                out.push_str(&format!("{b:02x}"));
            }
        }
        self.pad(&out);
    }

    fn fmt_integer(&mut self, i: i64, verb: char, v: &Value) {
        let base = match verb {
            'v' | 'd' => 10,
            'b' => 2,
            'o' | 'O' => 8,
            'x' | 'X' => 16,
            'c' => {
                let c = u32::try_from(i)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}');
                return self.pad(&c.to_string());
            }
            'q' => {
                let c = u32::try_from(i)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}');
                let q = quote_rune(c, self.f.plus);
                return self.pad(&q);
            }
            'U' => {
                let mut s = format!("U+{:04X}", i.unsigned_abs());
                if self.f.sharp
                    && let Some(c) = u32::try_from(i).ok().and_then(char::from_u32)
                    && is_print(c)
                {
                    s.push_str(&format!(" '{c}'"));
                }
                return self.pad(&s);
            }
            _ => return self.bad_verb(verb, v),
        };
        let neg = i < 0;
        let u = i.unsigned_abs();
        let mut digits = match base {
            2 => format!("{u:b}"),
            8 => format!("{u:o}"),
            16 if verb == 'X' => format!("{u:X}"),
            16 => format!("{u:x}"),
            _ => u.to_string(),
        };
        let mut prec = self.f.prec;
        if prec.is_none()
            && self.f.zero
            && !self.f.minus
            && let Some(w) = self.f.wid
        {
            prec = Some(if neg || self.f.plus || self.f.space {
                w.saturating_sub(1)
            } else {
                w
            });
        }
        if let Some(p) = prec {
            if p == 0 && u == 0 && self.f.prec.is_some() {
                digits.clear();
            }
            while digits.len() < p {
                digits.insert(0, '0');
            }
        }
        let mut prefix = String::new();
        if neg {
            prefix.push('-');
        } else if self.f.plus {
            prefix.push('+');
        } else if self.f.space {
            prefix.push(' ');
        }
        if self.f.sharp {
            match base {
                2 => prefix.push_str("0b"),
                8 if !digits.starts_with('0') => prefix.push('0'),
                16 => prefix.push_str(if verb == 'X' { "0X" } else { "0x" }),
                _ => {}
            }
        }
        if verb == 'O' {
            prefix.push_str("0o");
        }
        let s = prefix + &digits;
        self.pad(&s);
    }

    fn fmt_float(&mut self, x: f64, verb: char, v: &Value) {
        let (fverb, prec) = match verb {
            'v' => ('g', None),
            'g' | 'G' => (verb, self.f.prec),
            'e' | 'E' | 'f' | 'F' => (verb, Some(self.f.prec.unwrap_or(6))),
            _ => return self.bad_verb(verb, v),
        };
        let mut num = format_float(x, fverb, prec);
        if !num.starts_with('-') && !num.starts_with('+') {
            if self.f.plus {
                num.insert(0, '+');
            } else if self.f.space {
                num.insert(0, ' ');
            }
        }
        let width = self.f.wid.unwrap_or(0);
        if self.f.zero && !self.f.minus && width > num.len() && x.is_finite() {
            let (sign, rest) = match num.chars().next() {
                Some(c @ ('+' | '-' | ' ')) => (c.to_string(), num[1..].to_string()),
                _ => (String::new(), num.clone()),
            };
            self.buf.push_str(&sign);
            self.padding(width - num.len(), true);
            self.buf.push_str(&rest);
            return;
        }
        self.pad(&num);
    }

    fn bad_verb(&mut self, verb: char, v: &Value) {
        let saved = self.f;
        self.f = Flags::default();
        self.buf.push_str("%!");
        self.buf.push(verb);
        self.buf.push('(');
        match v {
            Value::Invalid => self.buf.push_str("<nil>"),
            _ => {
                self.buf.push_str(v.type_name());
                self.buf.push('=');
                self.print_arg(v, 'v', 0);
            }
        }
        self.buf.push(')');
        self.f = saved;
    }

    /// Go's `printArg` (depth 0) and `printValue` (depth > 0) merged.
    fn print_arg(&mut self, v: &Value, verb: char, depth: usize) {
        if verb == 'T' {
            let t = v.type_name().to_string();
            return self.pad(&t);
        }
        match v {
            Value::Invalid => match verb {
                'v' => self.pad("<nil>"),
                _ => self.bad_verb(verb, v),
            },
            Value::Nil => {
                if depth == 0 && verb != 'v' {
                    self.bad_verb(verb, &Value::Invalid)
                } else {
                    self.pad("<nil>")
                }
            }
            Value::Bool(b) => match verb {
                'v' | 't' => self.pad(if *b { "true" } else { "false" }),
                _ => self.bad_verb(verb, v),
            },
            Value::Int(i) | Value::Int64(i) => self.fmt_integer(*i, verb, v),
            Value::Float(x) => self.fmt_float(*x, verb, v),
            Value::Str(s) | Value::Number(s) => self.fmt_string(s, verb, v),
            Value::Map(m) => {
                self.buf.push_str("map[");
                for (i, (k, e)) in m.iter().enumerate() {
                    if i > 0 {
                        self.buf.push(' ');
                    }
                    self.fmt_string(k, verb, &Value::str(k));
                    self.buf.push(':');
                    self.print_arg(e, verb, depth + 1);
                }
                self.buf.push(']');
            }
            Value::List(l) => {
                self.buf.push('[');
                for (i, e) in l.iter().enumerate() {
                    if i > 0 {
                        self.buf.push(' ');
                    }
                    self.print_arg(e, verb, depth + 1);
                }
                self.buf.push(']');
            }
            Value::StrList(l) => {
                self.buf.push('[');
                for (i, e) in l.iter().enumerate() {
                    if i > 0 {
                        self.buf.push(' ');
                    }
                    self.fmt_string(e, verb, &Value::str(e));
                }
                self.buf.push(']');
            }
            // A non-nil pointer to a struct prints as &{...} at the top level. Nested
            // deeper Go prints its address, which no reimplementation can reproduce;
            // we print &{...} there too.
            Value::Secret(s) => {
                self.buf.push('&');
                self.print_secret(s, verb, depth);
            }
            Value::Auth(a) => {
                self.buf.push('&');
                self.print_auth(a, verb, depth);
            }
            Value::NilPtr(_) => match verb {
                'v' => self.pad("<nil>"),
                _ => self.bad_verb(verb, v),
            },
        }
    }

    fn field_name(&mut self, name: &str, first: bool) {
        if !first {
            self.buf.push(' ');
        }
        if self.f.plus_v {
            self.buf.push_str(name);
            self.buf.push(':');
        }
    }

    fn print_secret(&mut self, s: &Secret, verb: char, depth: usize) {
        self.buf.push('{');
        for (i, name) in SECRET_FIELDS.iter().enumerate() {
            self.field_name(name, i == 0);
            let v = s.field(name).unwrap_or(Value::Invalid);
            self.print_arg(&v, verb, depth + 1);
        }
        self.buf.push('}');
    }

    fn print_auth(&mut self, a: &SecretAuth, verb: char, depth: usize) {
        self.buf.push('{');
        for (i, name) in super::value::AUTH_FIELDS.iter().enumerate() {
            self.field_name(name, i == 0);
            let v = a.field(name).unwrap_or(Value::Invalid);
            self.print_arg(&v, verb, depth + 1);
        }
        self.buf.push('}');
    }
}

/// How an action prints its value: Go's `printableValue` then `fmt.Fprint`.
pub(crate) fn print_value(v: &Value) -> String {
    let mut p = Printer::new();
    match v {
        Value::Invalid => p.buf.push_str("<no value>"),
        Value::Secret(s) => p.print_secret(s, 'v', 0),
        Value::Auth(a) => p.print_auth(a, 'v', 0),
        v => p.print_arg(v, 'v', 0),
    }
    p.buf
}

fn is_string_kind(v: &Value) -> bool {
    matches!(v, Value::Str(_) | Value::Number(_))
}

/// `fmt.Sprint`.
pub(crate) fn sprint(args: &[Value]) -> String {
    let mut p = Printer::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = is_string_kind(a);
        if i > 0 && !is_string && !prev_string {
            p.buf.push(' ');
        }
        p.print_arg(a, 'v', 0);
        prev_string = is_string;
    }
    p.buf
}

/// `fmt.Sprintln`.
pub(crate) fn sprintln(args: &[Value]) -> String {
    let mut p = Printer::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            p.buf.push(' ');
        }
        p.print_arg(a, 'v', 0);
    }
    p.buf.push('\n');
    p.buf
}

fn parse_num(s: &[u8], start: usize, end: usize) -> (Option<usize>, usize) {
    let mut num: usize = 0;
    let mut isnum = false;
    let mut i = start;
    while i < end && s[i].is_ascii_digit() {
        if num > TOO_LARGE {
            return (None, end);
        }
        num = num * 10 + usize::from(s[i] - b'0');
        isnum = true;
        i += 1;
    }
    (isnum.then_some(num), i)
}

struct ArgCursor {
    num: usize,
    good: bool,
    reordered: bool,
}

/// Go's `argNumber`: an explicit `[n]` argument index.
fn arg_number(c: &mut ArgCursor, format: &[u8], i: usize, nargs: usize) -> (usize, bool) {
    if format.len() <= i || format[i] != b'[' {
        return (i, false);
    }
    c.reordered = true;
    let rest = &format[i..];
    if rest.len() < 3 {
        c.good = false;
        return (i + 1, false);
    }
    for j in 1..rest.len() {
        if rest[j] == b']' {
            let (n, newi) = parse_num(rest, 1, j);
            return match n {
                Some(n) if newi == j && n >= 1 && n - 1 < nargs => {
                    c.num = n - 1;
                    (i + j + 1, true)
                }
                Some(_) if newi == j => {
                    c.good = false;
                    (i + j + 1, true)
                }
                _ => {
                    c.good = false;
                    (i + j + 1, false)
                }
            };
        }
    }
    c.good = false;
    (i + 1, false)
}

fn int_from_arg(args: &[Value], c: &mut ArgCursor) -> (Option<i64>, bool) {
    if c.num < args.len() {
        let n = match &args[c.num] {
            Value::Int(i) | Value::Int64(i) if i.unsigned_abs() <= TOO_LARGE as u64 => Some(*i),
            _ => None,
        };
        c.num += 1;
        (n, true)
    } else {
        (None, false)
    }
}

/// `fmt.Sprintf`.
pub(crate) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut p = Printer::new();
    let fb = format.as_bytes();
    let end = fb.len();
    let mut c = ArgCursor {
        num: 0,
        good: true,
        reordered: false,
    };
    let mut i = 0;
    'format: while i < end {
        c.good = true;
        let lasti = i;
        while i < end && fb[i] != b'%' {
            i += 1;
        }
        if i > lasti {
            p.buf.push_str(&format[lasti..i]);
        }
        if i >= end {
            break;
        }
        i += 1;
        p.f = Flags::default();
        while i < end {
            match fb[i] {
                b'#' => p.f.sharp = true,
                b'0' => p.f.zero = true,
                b'+' => p.f.plus = true,
                b'-' => p.f.minus = true,
                b' ' => p.f.space = true,
                ch => {
                    if ch.is_ascii_lowercase() && c.num < args.len() && ch != b'w' {
                        if ch == b'v' {
                            p.f.plus_v = p.f.plus;
                            p.f.plus = false;
                            p.f.sharp = false;
                        }
                        p.print_arg(&args[c.num], ch as char, 0);
                        c.num += 1;
                        i += 1;
                        continue 'format;
                    }
                    break;
                }
            }
            i += 1;
        }
        let (ni, mut after_index) = arg_number(&mut c, fb, i, args.len());
        i = ni;
        if i < end && fb[i] == b'*' {
            i += 1;
            let (w, _) = int_from_arg(args, &mut c);
            match w {
                Some(w) => {
                    if w < 0 {
                        p.f.minus = true;
                        p.f.zero = false;
                    }
                    p.f.wid = Some(w.unsigned_abs() as usize);
                }
                None => p.buf.push_str("%!(BADWIDTH)"),
            }
            after_index = false;
        } else {
            let (w, ni) = parse_num(fb, i, end);
            p.f.wid = w;
            i = ni;
            if after_index && w.is_some() {
                c.good = false;
            }
        }
        if i + 1 < end && fb[i] == b'.' {
            i += 1;
            if after_index {
                c.good = false;
            }
            let (ni, ai) = arg_number(&mut c, fb, i, args.len());
            i = ni;
            after_index = ai;
            if i < end && fb[i] == b'*' {
                i += 1;
                let (pr, _) = int_from_arg(args, &mut c);
                match pr {
                    Some(pr) if pr >= 0 => p.f.prec = Some(pr as usize),
                    Some(_) => p.f.prec = None,
                    None => p.buf.push_str("%!(BADPREC)"),
                }
                after_index = false;
            } else {
                let (pr, ni) = parse_num(fb, i, end);
                p.f.prec = Some(pr.unwrap_or(0));
                i = ni;
            }
        }
        if !after_index {
            let (ni, _) = arg_number(&mut c, fb, i, args.len());
            i = ni;
        }
        if i >= end {
            p.buf.push_str("%!(NOVERB)");
            break;
        }
        let verb = format[i..].chars().next().unwrap_or('?');
        i += verb.len_utf8();
        match verb {
            '%' => p.buf.push('%'),
            _ if !c.good => {
                p.buf.push_str("%!");
                p.buf.push(verb);
                p.buf.push_str("(BADINDEX)");
            }
            _ if c.num >= args.len() => {
                p.buf.push_str("%!");
                p.buf.push(verb);
                p.buf.push_str("(MISSING)");
            }
            _ => {
                if verb == 'v' {
                    p.f.plus_v = p.f.plus;
                    p.f.plus = false;
                    p.f.sharp = false;
                }
                p.print_arg(&args[c.num], verb, 0);
                c.num += 1;
            }
        }
    }
    if !c.reordered && c.num < args.len() {
        p.f = Flags::default();
        p.buf.push_str("%!(EXTRA ");
        for (k, a) in args[c.num..].iter().enumerate() {
            if k > 0 {
                p.buf.push_str(", ");
            }
            match a {
                Value::Invalid | Value::Nil => p.buf.push_str("<nil>"),
                a => {
                    p.buf.push_str(a.type_name());
                    p.buf.push('=');
                    p.print_arg(a, 'v', 0);
                }
            }
        }
        p.buf.push(')');
    }
    p.buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go() {
        let g = |f: f64| format_float(f, 'g', None);
        assert_eq!(g(1e6), "1e+06");
        assert_eq!(g(100000.0), "100000");
        assert_eq!(g(1.5), "1.5");
        assert_eq!(g(123456789.0), "1.23456789e+08");
        assert_eq!(g(1e-5), "1e-05");
        assert_eq!(g(0.0001), "0.0001");
        assert_eq!(g(0.0), "0");
        assert_eq!(g(-0.0), "-0");
        assert_eq!(g(1e21), "1e+21");
        assert_eq!(format_float(1.23456, 'f', Some(1)), "1.2");
        assert_eq!(format_float(1234.5678, 'e', Some(2)), "1.23e+03");
        assert_eq!(format_float(1234.5678, 'g', Some(3)), "1.23e+03");
        assert_eq!(format_float(0.5, 'f', Some(0)), "0");
        assert_eq!(format_float(100.0, 'g', Some(3)), "100");
        assert_eq!(format_float(1.0, 'e', None), "1e+00");
        assert_eq!(json_float(1e21), "1e+21");
        assert_eq!(json_float(1e20), "100000000000000000000");
        assert_eq!(json_float(1e-7), "1e-7");
        assert_eq!(json_float(123456789.0), "123456789");
        assert_eq!(json_float(0.000001), "0.000001");
        assert_eq!(json_float(1.5e300), "1.5e+300");
    }

    #[test]
    fn printf_matches_go() {
        let s = |x: &str| Value::str(x);
        assert_eq!(
            sprintf(
                "%d %s %v %q",
                &[Value::Int(5), Value::Int(5), Value::Invalid, s("x")]
            ),
            "5 %!s(int=5) <nil> \"x\""
        );
        assert_eq!(sprintf("%d", &[]), "%!d(MISSING)");
        assert_eq!(
            sprintf("%d", &[Value::Int(1), Value::Int(2)]),
            "1%!(EXTRA int=2)"
        );
        assert_eq!(sprintf("%!", &[]), "%!!(MISSING)");
        assert_eq!(sprintf("%z", &[Value::Int(3)]), "%!z(int=3)");
        assert_eq!(sprintf("abc%", &[]), "abc%!(NOVERB)");
        assert_eq!(
            sprintf(
                "%5.1f|%-4d|%04d|%x|%X|%o|%b",
                &[
                    Value::Float(1.23456),
                    Value::Int(7),
                    Value::Int(-7),
                    Value::Int(255),
                    Value::Int(255),
                    Value::Int(8),
                    Value::Int(5)
                ]
            ),
            "  1.2|7   |-007|ff|FF|10|101"
        );
        assert_eq!(
            sprintf(
                "%+q|%x|% x|%10s|%-10s|%.3s",
                &[s("héllo"), s("hé"), s("hé"), s("ab"), s("ab"), s("abcdef")]
            ),
            "\"h\\u00e9llo\"|68c3a9|68 c3 a9|        ab|ab        |abc"
        );
        assert_eq!(
            sprintf("%d", &[Value::Number("10".into())]),
            "%!d(json.Number=10)"
        );
        assert_eq!(
            sprintf("%[2]d %[1]d", &[Value::Int(1), Value::Int(2)]),
            "2 1"
        );
        assert_eq!(sprintf("%*d|", &[Value::Int(4), Value::Int(1)]), "   1|");
        assert_eq!(sprintf("%c%c", &[Value::Int(104), Value::Int(233)]), "hé");
        assert_eq!(sprintf("%T %T", &[Value::Int(1), s("x")]), "int string");
    }

    #[test]
    fn sprint_spaces_only_between_non_strings() {
        let v = [
            Value::Int(1),
            Value::Int(2),
            Value::str("a"),
            Value::Int(3),
            Value::str("b"),
            Value::str("c"),
            Value::Invalid,
            Value::Float(1.5),
            Value::Float(1e6),
        ];
        assert_eq!(sprint(&v), "1 2a3bc<nil> 1.5 1e+06");
        assert_eq!(sprintln(&[Value::Int(1), Value::str("x")]), "1 x\n");
    }

    #[test]
    fn quote_matches_strconv() {
        assert_eq!(
            quote(
                "a\x08b\x0cc\nd\re\tf\x01g\x7fh\u{2028}i\u{a0}j\u{ad}k😀\"\\",
                false
            ),
            "\"a\\bb\\fc\\nd\\re\\tf\\x01g\\x7fh\\u2028i\\u00a0j\\u00adk😀\\\"\\\\\""
        );
        assert_eq!(quote("😀", true), "\"\\U0001f600\"");
    }
}
