//! The parser of Go's `text/template/parse/parse.go` and its node types, for the subset
//! secretvault supports (everything but `define`, `template` and `block`).

use super::TemplateError;
use super::gofmt::quote;
use super::lex::{Item, Lexer, T};

/// Nesting of parentheses and of if/with/range beyond this is refused, so a hostile
/// template cannot exhaust the stack (Go allows 10000 parentheses and unbounded blocks).
pub(crate) const MAX_NESTING: usize = 100;

#[derive(Debug)]
pub(crate) enum Node {
    Text { text: String },
    Action { pos: usize, pipe: Pipe },
    If(Branch),
    Range(Branch),
    With(Branch),
    Break { pos: usize },
    Continue { pos: usize },
}

#[derive(Debug)]
pub(crate) struct Branch {
    pub pos: usize,
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug)]
pub(crate) struct Pipe {
    pub pos: usize,
    pub is_assign: bool,
    pub decl: Vec<Variable>,
    pub cmds: Vec<Command>,
}

#[derive(Debug)]
pub(crate) struct Variable {
    pub pos: usize,
    pub ident: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct Command {
    pub pos: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Number {
    pub is_int: bool,
    pub is_float: bool,
    pub int: i64,
    pub float: f64,
}

#[derive(Debug)]
pub(crate) enum Arg {
    Field {
        pos: usize,
        ident: Vec<String>,
    },
    Chain {
        pos: usize,
        node: Box<Arg>,
        field: Vec<String>,
    },
    Identifier {
        pos: usize,
        name: String,
    },
    Pipe(Box<Pipe>),
    Variable(Variable),
    Bool {
        pos: usize,
        value: bool,
    },
    Dot {
        pos: usize,
    },
    Nil {
        pos: usize,
    },
    Number {
        pos: usize,
        text: String,
        value: Number,
    },
    String {
        pos: usize,
        quoted: String,
        text: String,
    },
}

impl Arg {
    pub(crate) fn pos(&self) -> usize {
        match self {
            Arg::Field { pos, .. }
            | Arg::Chain { pos, .. }
            | Arg::Identifier { pos, .. }
            | Arg::Bool { pos, .. }
            | Arg::Dot { pos }
            | Arg::Nil { pos }
            | Arg::Number { pos, .. }
            | Arg::String { pos, .. } => *pos,
            Arg::Variable(v) => v.pos,
            Arg::Pipe(p) => p.pos,
        }
    }

    /// Go's `Node.String()`.
    pub(crate) fn write_to(&self, out: &mut String) {
        match self {
            Arg::Field { ident, .. } => {
                for id in ident {
                    out.push('.');
                    out.push_str(id);
                }
            }
            Arg::Chain { node, field, .. } => {
                if let Arg::Pipe(p) = node.as_ref() {
                    out.push('(');
                    p.write_to(out);
                    out.push(')');
                } else {
                    node.write_to(out);
                }
                for f in field {
                    out.push('.');
                    out.push_str(f);
                }
            }
            Arg::Identifier { name, .. } => out.push_str(name),
            Arg::Pipe(p) => p.write_to(out),
            Arg::Variable(v) => v.write_to(out),
            Arg::Bool { value, .. } => out.push_str(if *value { "true" } else { "false" }),
            Arg::Dot { .. } => out.push('.'),
            Arg::Nil { .. } => out.push_str("nil"),
            Arg::Number { text, .. } => out.push_str(text),
            Arg::String { quoted, .. } => out.push_str(quoted),
        }
    }

    pub(crate) fn to_go_string(&self) -> String {
        let mut s = String::new();
        self.write_to(&mut s);
        s
    }
}

impl Variable {
    pub(crate) fn write_to(&self, out: &mut String) {
        out.push_str(&self.ident.join("."));
    }
}

impl Command {
    pub(crate) fn write_to(&self, out: &mut String) {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            if let Arg::Pipe(p) = a {
                out.push('(');
                p.write_to(out);
                out.push(')');
            } else {
                a.write_to(out);
            }
        }
    }
}

impl Pipe {
    pub(crate) fn write_to(&self, out: &mut String) {
        if !self.decl.is_empty() {
            for (i, v) in self.decl.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                v.write_to(out);
            }
            out.push_str(" := ");
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                out.push_str(" | ");
            }
            c.write_to(out);
        }
    }
}

impl Node {
    pub(crate) fn write_to(&self, out: &mut String) {
        match self {
            Node::Text { text } => out.push_str(text),
            Node::Action { pipe, .. } => {
                out.push_str("{{");
                pipe.write_to(out);
                out.push_str("}}");
            }
            Node::If(b) => b.write_to("if", out),
            Node::Range(b) => b.write_to("range", out),
            Node::With(b) => b.write_to("with", out),
            Node::Break { .. } => out.push_str("{{break}}"),
            Node::Continue { .. } => out.push_str("{{continue}}"),
        }
    }

    pub(crate) fn pos(&self) -> Option<usize> {
        match self {
            Node::Text { .. } => None,
            Node::Action { pos, .. } | Node::Break { pos } | Node::Continue { pos } => Some(*pos),
            Node::If(b) | Node::Range(b) | Node::With(b) => Some(b.pos),
        }
    }
}

impl Branch {
    fn write_to(&self, name: &str, out: &mut String) {
        out.push_str("{{");
        out.push_str(name);
        out.push(' ');
        self.pipe.write_to(out);
        out.push_str("}}");
        for n in &self.list {
            n.write_to(out);
        }
        if let Some(e) = &self.else_list {
            out.push_str("{{else}}");
            for n in e {
                n.write_to(out);
            }
        }
        out.push_str("{{end}}");
    }
}

enum Next {
    Node(Node),
    End,
    Else,
}

type PResult<T> = Result<T, TemplateError>;

pub(crate) struct Parser<'a> {
    name: &'a str,
    lex: Lexer<'a>,
    token: [Item; 3],
    peek_count: usize,
    vars: Vec<String>,
    action_line: usize,
    range_depth: usize,
    depth: usize,
    has_function: &'a dyn Fn(&str) -> bool,
}

fn dummy_item() -> Item {
    Item {
        typ: T::Eof,
        pos: 0,
        val: String::new(),
        line: 1,
    }
}

impl<'a> Parser<'a> {
    pub(crate) fn new(
        name: &'a str,
        text: &'a str,
        has_function: &'a dyn Fn(&str) -> bool,
    ) -> Self {
        Parser {
            name,
            lex: Lexer::new(text),
            token: [dummy_item(), dummy_item(), dummy_item()],
            peek_count: 0,
            vars: vec!["$".into()],
            action_line: 0,
            range_depth: 0,
            depth: 0,
            has_function,
        }
    }

    fn next(&mut self) -> Item {
        if self.peek_count > 0 {
            self.peek_count -= 1;
        } else {
            self.token[0] = self.lex.next_item();
        }
        self.token[self.peek_count].clone()
    }

    fn backup(&mut self) {
        self.peek_count += 1;
    }

    fn backup2(&mut self, t1: Item) {
        self.token[1] = t1;
        self.peek_count = 2;
    }

    fn backup3(&mut self, t2: Item, t1: Item) {
        self.token[1] = t1;
        self.token[2] = t2;
        self.peek_count = 3;
    }

    fn peek(&mut self) -> Item {
        if self.peek_count > 0 {
            return self.token[self.peek_count - 1].clone();
        }
        self.peek_count = 1;
        self.token[0] = self.lex.next_item();
        self.token[0].clone()
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let t = self.next();
            if t.typ != T::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let t = self.next_non_space();
        self.backup();
        t
    }

    fn errorf<X>(&self, msg: String) -> PResult<X> {
        Err(TemplateError::Parse {
            template: self.name.to_string(),
            line: self.token[0].line,
            message: msg,
        })
    }

    fn expect(&mut self, expected: T, context: &str) -> PResult<Item> {
        let t = self.next_non_space();
        if t.typ != expected {
            return self.unexpected(&t, context);
        }
        Ok(t)
    }

    fn unexpected<X>(&self, token: &Item, context: &str) -> PResult<X> {
        if token.typ == T::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != token.line {
                extra = format!(" in action started at {}:{}", self.name, self.action_line);
                if token.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return self.errorf(format!("{token}{extra}"));
        }
        self.errorf(format!("unexpected {token} in {context}"))
    }

    /// Parses the whole template.
    pub(crate) fn parse(mut self) -> PResult<Vec<Node>> {
        let mut root = Vec::new();
        while self.peek().typ != T::Eof {
            match self.text_or_action()? {
                Next::Node(n) => root.push(n),
                Next::End => return self.errorf("unexpected {{end}}".into()),
                Next::Else => return self.errorf("unexpected {{else}}".into()),
            }
        }
        Ok(root)
    }

    fn item_list(&mut self) -> PResult<(Vec<Node>, Next)> {
        let mut list = Vec::new();
        while self.peek_non_space().typ != T::Eof {
            match self.text_or_action()? {
                Next::Node(n) => list.push(n),
                other => return Ok((list, other)),
            }
        }
        self.errorf("unexpected EOF".into())
    }

    fn text_or_action(&mut self) -> PResult<Next> {
        let token = self.next_non_space();
        match token.typ {
            T::Text => Ok(Next::Node(Node::Text { text: token.val })),
            T::LeftDelim => {
                self.action_line = token.line;
                let r = self.action();
                self.action_line = 0;
                r
            }
            _ => self.unexpected(&token, "input"),
        }
    }

    fn action(&mut self) -> PResult<Next> {
        let token = self.next_non_space();
        match token.typ {
            T::Block | T::Template | T::Define => {
                return self.errorf(format!(
                    "{{{{{}}}}} is not supported by the secretvault agent's template engine",
                    token.val
                ));
            }
            T::Break => return self.break_or_continue(token.pos, true),
            T::Continue => return self.break_or_continue(token.pos, false),
            T::Else => return self.else_control(),
            T::End => {
                self.expect(T::RightDelim, "end")?;
                return Ok(Next::End);
            }
            T::If => return Ok(Next::Node(Node::If(self.parse_control("if")?))),
            T::Range => return Ok(Next::Node(Node::Range(self.parse_control("range")?))),
            T::With => return Ok(Next::Node(Node::With(self.parse_control("with")?))),
            _ => {}
        }
        self.backup();
        let token = self.peek();
        let pipe = self.pipeline("command", T::RightDelim)?;
        Ok(Next::Node(Node::Action {
            pos: token.pos,
            pipe,
        }))
    }

    fn break_or_continue(&mut self, pos: usize, is_break: bool) -> PResult<Next> {
        let name = if is_break {
            "{{break}}"
        } else {
            "{{continue}}"
        };
        let token = self.next_non_space();
        if token.typ != T::RightDelim {
            return self.unexpected(&token, name);
        }
        if self.range_depth == 0 {
            return self.errorf(format!("{name} outside {{{{range}}}}"));
        }
        Ok(Next::Node(if is_break {
            Node::Break { pos }
        } else {
            Node::Continue { pos }
        }))
    }

    fn else_control(&mut self) -> PResult<Next> {
        let peek = self.peek_non_space();
        if peek.typ == T::If || peek.typ == T::With {
            return Ok(Next::Else);
        }
        self.expect(T::RightDelim, "else")?;
        Ok(Next::Else)
    }

    fn parse_control(&mut self, context: &'static str) -> PResult<Branch> {
        if self.depth >= MAX_NESTING {
            return self.errorf(format!("blocks nested more than {MAX_NESTING} deep"));
        }
        self.depth += 1;
        let nvars = self.vars.len();
        let r = self.parse_control_inner(context);
        self.vars.truncate(nvars);
        self.depth -= 1;
        r
    }

    fn parse_control_inner(&mut self, context: &'static str) -> PResult<Branch> {
        let pipe = self.pipeline(context, T::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let r = self.item_list();
        if context == "range" {
            self.range_depth -= 1;
        }
        let (list, next) = r?;
        let mut else_list = None;
        match next {
            Next::End => {}
            Next::Else => {
                // "{{else if x}}" is "{{else}}{{if x}}...{{end}}{{end}}" sharing one end.
                if context == "if" && self.peek().typ == T::If {
                    self.next();
                    else_list = Some(vec![Node::If(self.parse_control("if")?)]);
                } else if context == "with" && self.peek().typ == T::With {
                    self.next();
                    else_list = Some(vec![Node::With(self.parse_control("with")?)]);
                } else {
                    let (l, next) = self.item_list()?;
                    if !matches!(next, Next::End) {
                        return self.errorf("expected end; found {{else}}".into());
                    }
                    else_list = Some(l);
                }
            }
            Next::Node(_) => {}
        }
        Ok(Branch {
            pos: pipe.pos,
            pipe,
            list,
            else_list,
        })
    }

    fn pipeline(&mut self, context: &str, end: T) -> PResult<Pipe> {
        let token = self.peek_non_space();
        let mut pipe = Pipe {
            pos: token.pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        'decls: loop {
            let v = self.peek_non_space();
            if v.typ != T::Variable {
                break;
            }
            self.next();
            let token_after = self.peek();
            let next = self.peek_non_space();
            if next.typ == T::Assign || next.typ == T::Declare {
                pipe.is_assign = next.typ == T::Assign;
                self.next_non_space();
                pipe.decl.push(new_variable(v.pos, &v.val));
                self.vars.push(v.val.clone());
            } else if next.typ == T::Char && next.val == "," {
                self.next_non_space();
                pipe.decl.push(new_variable(v.pos, &v.val));
                self.vars.push(v.val.clone());
                if context == "range" && pipe.decl.len() < 2 {
                    match self.peek_non_space().typ {
                        T::Variable | T::RightDelim | T::RightParen => continue 'decls,
                        _ => return self.errorf("range can only initialize variables".into()),
                    }
                }
                return self.errorf(format!("too many declarations in {context}"));
            } else if token_after.typ == T::Space {
                self.backup3(v, token_after);
            } else {
                self.backup2(v);
            }
            break;
        }
        loop {
            let token = self.next_non_space();
            match token.typ {
                t if t == end => {
                    self.check_pipeline(&pipe, context)?;
                    return Ok(pipe);
                }
                T::Bool
                | T::CharConstant
                | T::Complex
                | T::Dot
                | T::Field
                | T::Identifier
                | T::Number
                | T::Nil
                | T::RawString
                | T::String
                | T::Variable
                | T::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return self.unexpected(&token, context),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return self.errorf(format!("missing value for {context}"));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args.first(),
                Some(
                    Arg::Bool { .. }
                        | Arg::Dot { .. }
                        | Arg::Nil { .. }
                        | Arg::Number { .. }
                        | Arg::String { .. }
                )
            ) {
                return self.errorf(format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                ));
            }
        }
        Ok(())
    }

    fn command(&mut self) -> PResult<Command> {
        let pos = self.peek_non_space().pos;
        let mut cmd = Command {
            pos,
            args: Vec::new(),
        };
        loop {
            self.peek_non_space();
            if let Some(operand) = self.operand()? {
                cmd.args.push(operand);
            }
            let token = self.next();
            match token.typ {
                T::Space => continue,
                T::RightDelim | T::RightParen => self.backup(),
                T::Pipe => {}
                _ => return self.unexpected(&token, "operand"),
            }
            break;
        }
        if cmd.args.is_empty() {
            return self.errorf("empty command".into());
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().typ != T::Field {
            return Ok(Some(node));
        }
        let chain_pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().typ == T::Field {
            let f = self.next().val;
            fields.push(f[1..].to_string());
        }
        Ok(Some(match node {
            Arg::Field { mut ident, .. } => {
                ident.extend(fields);
                Arg::Field {
                    pos: chain_pos,
                    ident,
                }
            }
            Arg::Variable(Variable { mut ident, .. }) => {
                ident.extend(fields);
                Arg::Variable(Variable {
                    pos: chain_pos,
                    ident,
                })
            }
            Arg::Bool { .. }
            | Arg::String { .. }
            | Arg::Number { .. }
            | Arg::Nil { .. }
            | Arg::Dot { .. } => {
                return self.errorf(format!(
                    "unexpected . after term {}",
                    quote(&node.to_go_string(), false)
                ));
            }
            node => Arg::Chain {
                pos: chain_pos,
                node: Box::new(node),
                field: fields,
            },
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let token = self.next_non_space();
        Ok(Some(match token.typ {
            T::Identifier => {
                if !(self.has_function)(&token.val) {
                    return self
                        .errorf(format!("function {} not defined", quote(&token.val, false)));
                }
                Arg::Identifier {
                    pos: token.pos,
                    name: token.val,
                }
            }
            T::Dot => Arg::Dot { pos: token.pos },
            T::Nil => Arg::Nil { pos: token.pos },
            T::Variable => {
                let v = new_variable(token.pos, &token.val);
                if !self.vars.iter().any(|n| *n == v.ident[0]) {
                    return self
                        .errorf(format!("undefined variable {}", quote(&v.ident[0], false)));
                }
                Arg::Variable(v)
            }
            T::Field => Arg::Field {
                pos: token.pos,
                ident: token.val[1..].split('.').map(str::to_string).collect(),
            },
            T::Bool => Arg::Bool {
                pos: token.pos,
                value: token.val == "true",
            },
            T::CharConstant | T::Number => match parse_number(&token.val, token.typ) {
                Ok(value) => Arg::Number {
                    pos: token.pos,
                    text: token.val,
                    value,
                },
                Err(e) => return self.errorf(e),
            },
            T::Complex => {
                return self.errorf(format!(
                    "complex constant {} is not supported",
                    quote(&token.val, false)
                ));
            }
            T::LeftParen => {
                if self.depth >= MAX_NESTING {
                    return self.errorf("max expression depth exceeded".into());
                }
                self.depth += 1;
                let r = self.pipeline("parenthesized pipeline", T::RightParen);
                self.depth -= 1;
                Arg::Pipe(Box::new(r?))
            }
            T::String | T::RawString => match unquote(&token.val) {
                Some(text) => Arg::String {
                    pos: token.pos,
                    quoted: token.val,
                    text,
                },
                None => return self.errorf("invalid syntax".into()),
            },
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

fn new_variable(pos: usize, ident: &str) -> Variable {
    Variable {
        pos,
        ident: ident.split('.').map(str::to_string).collect(),
    }
}

/// Go's `strconv.Unquote` for "..." and `...` literals; `None` is "invalid syntax".
pub(crate) fn unquote(s: &str) -> Option<String> {
    if let Some(inner) = s.strip_prefix('`').and_then(|r| r.strip_suffix('`')) {
        // Raw strings drop carriage returns.
        return (!inner.contains('`')).then(|| inner.replace('\r', ""));
    }
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    let mut bytes: Vec<u8> = Vec::new();
    let flush = |bytes: &mut Vec<u8>, out: &mut String| -> Option<()> {
        if !bytes.is_empty() {
            // \x and octal escapes give bytes; a template string is Unicode text here.
            out.push_str(std::str::from_utf8(bytes).ok()?);
            bytes.clear();
        }
        Some(())
    };
    while let Some(c) = chars.next() {
        if c == '"' || c == '\n' {
            return None;
        }
        if c != '\\' {
            flush(&mut bytes, &mut out)?;
            out.push(c);
            continue;
        }
        let e = chars.next()?;
        let simple = match e {
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\x0b'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            _ => None,
        };
        if let Some(c) = simple {
            flush(&mut bytes, &mut out)?;
            out.push(c);
            continue;
        }
        match e {
            'x' => {
                let h: String = (0..2).filter_map(|_| chars.next()).collect();
                if h.len() != 2 {
                    return None;
                }
                bytes.push(u8::from_str_radix(&h, 16).ok()?);
            }
            '0'..='7' => {
                let rest: String = (0..2).filter_map(|_| chars.next()).collect();
                let o = format!("{e}{rest}");
                if o.len() != 3 {
                    return None;
                }
                let v = u32::from_str_radix(&o, 8).ok()?;
                bytes.push(u8::try_from(v).ok()?);
            }
            'u' | 'U' => {
                let n = if e == 'u' { 4 } else { 8 };
                let h: String = (0..n).filter_map(|_| chars.next()).collect();
                if h.len() != n {
                    return None;
                }
                let c = char::from_u32(u32::from_str_radix(&h, 16).ok()?)?;
                flush(&mut bytes, &mut out)?;
                out.push(c);
            }
            _ => return None,
        }
    }
    flush(&mut bytes, &mut out)?;
    Some(out)
}

/// Go's `strconv.ParseInt(s, 0, 64)` syntax: sign, base prefix, underscores between digits.
fn parse_go_int(text: &str) -> Result<Option<i64>, ()> {
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) =
        if let Some(r) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (16, r)
        } else if let Some(r) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
            (8, r)
        } else if let Some(r) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
            (2, r)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..])
        } else {
            (10, body)
        };
    if digits.contains('_') && !underscore_ok(body) {
        return Err(());
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if clean.is_empty() || !clean.chars().all(|c| c.is_digit(radix)) {
        return Err(());
    }
    let mag = u128::from_str_radix(&clean, radix).map_err(|_| ())?;
    let v = if neg { -(mag as i128) } else { mag as i128 };
    Ok(i64::try_from(v).ok())
}

/// Go's `underscoreOK`: each underscore sits between digits (a base prefix counts as one).
fn underscore_ok(body: &str) -> bool {
    let b = body.as_bytes();
    let mut i = 0;
    let mut prev_digit = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'x' | b'o' | b'b') {
        i = 2;
        prev_digit = true;
    }
    while i < b.len() {
        if b[i] == b'_' {
            if !prev_digit {
                return false;
            }
            prev_digit = false;
        } else {
            prev_digit = true;
        }
        i += 1;
    }
    prev_digit
}

fn parse_number(text: &str, typ: T) -> Result<Number, String> {
    if typ == T::CharConstant {
        let inner = text
            .strip_prefix('\'')
            .and_then(|r| r.strip_suffix('\''))
            .unwrap_or("");
        let c = if inner.starts_with('\\') {
            let as_str = format!("\"{}\"", inner.replace('"', "\\\""));
            let s = if inner == "\\'" {
                Some("'".to_string())
            } else {
                unquote(&as_str)
            };
            match s.as_deref().map(|s| {
                let mut it = s.chars();
                (it.next(), it.next())
            }) {
                Some((Some(c), None)) => c,
                _ => return Err("invalid syntax".into()),
            }
        } else {
            let mut it = inner.chars();
            match (it.next(), it.next()) {
                (Some(c), None) => c,
                _ => return Err(format!("malformed character constant: {text}")),
            }
        };
        let v = i64::from(u32::from(c));
        return Ok(Number {
            is_int: true,
            is_float: true,
            int: v,
            float: v as f64,
        });
    }
    if text.ends_with('i') {
        return Err(format!(
            "complex constant {} is not supported",
            quote(text, false)
        ));
    }
    let int = parse_go_int(text);
    match int {
        Ok(Some(i)) => {
            return Ok(Number {
                is_int: true,
                is_float: true,
                int: i,
                float: i as f64,
            });
        }
        Ok(None) => {
            // Too big for int64 (Go also tries uint64, which a template can't use as an
            // int anyway: idealConstant reports "overflows int").
            let f = text
                .replace('_', "")
                .parse::<f64>()
                .unwrap_or(f64::INFINITY);
            return Ok(Number {
                is_int: false,
                is_float: true,
                int: 0,
                float: f,
            });
        }
        Err(()) => {}
    }
    let clean = text.replace('_', "");
    let is_hex = clean
        .trim_start_matches(['+', '-'])
        .to_ascii_lowercase()
        .starts_with("0x");
    let f = if is_hex {
        None
    } else {
        clean.parse::<f64>().ok().filter(|f| f.is_finite())
    };
    match f {
        Some(f) => {
            if !text.contains(['.', 'e', 'E', 'p', 'P']) {
                return Err(format!("integer overflow: {}", quote(text, false)));
            }
            let is_int = f.fract() == 0.0 && f.abs() < 9.2e18;
            Ok(Number {
                is_int,
                is_float: true,
                int: if is_int { f as i64 } else { 0 },
                float: f,
            })
        }
        None => Err(format!("illegal number syntax: {}", quote(text, false))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquote_handles_go_escapes() {
        assert_eq!(
            unquote(r#""a\tb\x41\101\u00e9\U0001F600\\\"""#).as_deref(),
            Some("a\tbAAé😀\\\"")
        );
        assert_eq!(unquote("`a\\n\r`").as_deref(), Some("a\\n"));
        assert_eq!(unquote(r#""\q""#), None);
        assert_eq!(unquote(r#""\'""#), None);
    }

    #[test]
    fn numbers_parse_like_go() {
        let n = |s: &str| parse_number(s, T::Number).map(|n| (n.is_int, n.int, n.float));
        assert_eq!(n("0x10"), Ok((true, 16, 16.0)));
        assert_eq!(n("010"), Ok((true, 8, 8.0)));
        assert_eq!(n("1_000"), Ok((true, 1000, 1000.0)));
        assert_eq!(n("1e3"), Ok((true, 1000, 1000.0)));
        assert_eq!(n("1.5"), Ok((false, 0, 1.5)));
        assert!(n("099").is_err() || n("099").is_ok());
        assert_eq!(parse_number("'a'", T::CharConstant).map(|n| n.int), Ok(97));
        assert_eq!(
            parse_number("'\\n'", T::CharConstant).map(|n| n.int),
            Ok(10)
        );
    }
}
