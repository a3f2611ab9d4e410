//! The executor of Go's `text/template/exec.go`: how pipelines, fields, variables and
//! function calls evaluate, which node an error points at, and how values print.

use std::collections::HashMap;

use super::funcs::{self, Imp, P};
use super::gofmt::{self, quote};
use super::parse::{Arg, Branch, Command, Node, Pipe, Variable};
use super::value::{AUTH_FIELDS, AUTH_TYPE, SECRET_FIELDS, SECRET_TYPE, Value};
use super::{RenderOptions, SecretSource, Template, TemplateError};

/// Units of work (nodes walked, commands run, bytes built) one render may spend; enough
/// for any honest template, small enough that `{{range 1000000000}}` ends in seconds.
const MAX_WORK: u64 = 20_000_000;

type R<T> = Result<T, TemplateError>;

/// A value together with whether its Go static type is `interface{}`; only error
/// messages can tell (`can't evaluate field x in type interface {}`).
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    pub v: Value,
    pub iface: bool,
}

impl Slot {
    fn concrete(v: Value) -> Slot {
        Slot { v, iface: false }
    }
}

/// The node errors are reported at (Go's `state.at`).
#[derive(Clone, Copy)]
enum At<'t> {
    None,
    Node(&'t Node),
    Pipe(&'t Pipe),
    Arg(&'t Arg),
    Cmd(&'t Command),
    Var(&'t Variable),
}

impl At<'_> {
    fn pos(&self) -> Option<usize> {
        match self {
            At::None => None,
            At::Node(n) => n.pos(),
            At::Pipe(p) => Some(p.pos),
            At::Arg(a) => Some(a.pos()),
            At::Cmd(c) => Some(c.pos),
            At::Var(v) => Some(v.pos),
        }
    }

    fn context(&self) -> String {
        let mut s = String::new();
        match self {
            At::None => {}
            At::Node(n) => n.write_to(&mut s),
            At::Pipe(p) => p.write_to(&mut s),
            At::Arg(a) => a.write_to(&mut s),
            At::Cmd(c) => c.write_to(&mut s),
            At::Var(v) => v.write_to(&mut s),
        }
        s
    }
}

enum Flow {
    Normal,
    Break,
    Continue,
}

pub(crate) struct State<'t, 's> {
    tmpl: &'t Template,
    out: String,
    vars: Vec<(String, Slot)>,
    at: At<'t>,
    pub(crate) source: &'s mut dyn SecretSource,
    pub(crate) opts: &'s RenderOptions,
    /// Responses already fetched in this render: consul-template reads each secret once.
    pub(crate) cache: HashMap<String, Value>,
    work: u64,
}

pub(crate) fn execute(
    tmpl: &Template,
    source: &mut dyn SecretSource,
    opts: &RenderOptions,
) -> Result<String, TemplateError> {
    let mut s = State {
        tmpl,
        out: String::new(),
        // consul-template executes with nil data.
        vars: vec![("$".into(), Slot::concrete(Value::Invalid))],
        at: At::None,
        source,
        opts,
        cache: HashMap::new(),
        work: 0,
    };
    let dot = Slot::concrete(Value::Invalid);
    s.walk_list(&dot, &tmpl.root)?;
    Ok(s.out)
}

fn err_limit(tmpl: &Template, message: String) -> TemplateError {
    TemplateError::Limit {
        template: tmpl.name.clone(),
        message,
    }
}

impl<'t, 's> State<'t, 's> {
    pub(crate) fn errorf(&self, message: impl Into<String>) -> TemplateError {
        let message = message.into();
        match self.at.pos() {
            None => err_limit(self.tmpl, message),
            Some(pos) => {
                let text = self.tmpl.text.get(..pos).unwrap_or(&self.tmpl.text);
                let (line, col) = match text.rfind('\n') {
                    Some(nl) => (1 + text.matches('\n').count(), pos - (nl + 1)),
                    None => (1, pos),
                };
                TemplateError::Exec {
                    template: self.tmpl.name.clone(),
                    line,
                    col,
                    context: self.at.context(),
                    message,
                }
            }
        }
    }

    /// Charges `units` of work against the render's budget.
    pub(crate) fn charge(&mut self, units: u64) -> R<()> {
        self.work = self.work.saturating_add(units);
        if self.work > MAX_WORK {
            return Err(err_limit(
                self.tmpl,
                format!("rendering did more than {MAX_WORK} steps of work; is a range too large?"),
            ));
        }
        Ok(())
    }

    /// The largest string a function may build: no bigger than the whole output may be.
    pub(crate) fn max_string(&self) -> usize {
        self.opts.max_output_bytes
    }

    fn write(&mut self, s: &str) -> R<()> {
        if self.out.len().saturating_add(s.len()) > self.opts.max_output_bytes {
            return Err(err_limit(
                self.tmpl,
                format!(
                    "the rendered output would exceed {} bytes (RenderOptions::max_output_bytes)",
                    self.opts.max_output_bytes
                ),
            ));
        }
        self.charge(1 + s.len() as u64 / 64)?;
        self.out.push_str(s);
        Ok(())
    }

    // -- variables ------------------------------------------------------------------------

    fn mark(&self) -> usize {
        self.vars.len()
    }

    fn pop(&mut self, mark: usize) {
        self.vars.truncate(mark);
    }

    fn set_var(&mut self, name: &str, v: Slot) -> R<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => Err(self.errorf(format!("undefined variable: {name}"))),
        }
    }

    fn set_top_var(&mut self, n: usize, v: Slot) {
        let len = self.vars.len();
        if let Some(slot) = len.checked_sub(n).and_then(|i| self.vars.get_mut(i)) {
            slot.1 = v;
        }
    }

    fn var_value(&self, name: &str) -> R<Slot> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => Err(self.errorf(format!("undefined variable: {name}"))),
        }
    }

    // -- walking --------------------------------------------------------------------------

    fn walk_list(&mut self, dot: &Slot, list: &'t [Node]) -> R<Flow> {
        for n in list {
            match self.walk(dot, n)? {
                Flow::Normal => {}
                f => return Ok(f),
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, dot: &Slot, node: &'t Node) -> R<Flow> {
        self.at = At::Node(node);
        self.charge(1)?;
        match node {
            Node::Text { text } => self.write(text)?,
            Node::Action { pipe, .. } => {
                let v = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.at = At::Node(node);
                    let s = gofmt::print_value(&v);
                    self.write(&s)?;
                }
            }
            Node::If(b) => return self.walk_if_or_with(false, dot, b),
            Node::With(b) => return self.walk_if_or_with(true, dot, b),
            Node::Range(b) => return self.walk_range(dot, node, b),
            Node::Break { .. } => return Ok(Flow::Break),
            Node::Continue { .. } => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn walk_if_or_with(&mut self, with: bool, dot: &Slot, b: &'t Branch) -> R<Flow> {
        let mark = self.mark();
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let flow = if val.truth() {
            if with {
                self.walk_list(&Slot::concrete(val), &b.list)?
            } else {
                self.walk_list(dot, &b.list)?
            }
        } else if let Some(e) = &b.else_list {
            self.walk_list(dot, e)?
        } else {
            Flow::Normal
        };
        self.pop(mark);
        Ok(flow)
    }

    fn walk_range(&mut self, dot: &Slot, node: &'t Node, r: &'t Branch) -> R<Flow> {
        self.at = At::Node(node);
        let mark0 = self.mark();
        let val = self.eval_pipeline(dot, &r.pipe)?;
        let mark = self.mark();
        let decl = r.pipe.decl.len();
        let mut iterations: Vec<(Slot, Slot)> = Vec::new();
        let mut lazy_int: Option<i64> = None;
        match &val {
            Value::Int(n) | Value::Int64(n) => {
                if decl > 1 {
                    return Err(self.errorf(format!(
                        "can't use {} to iterate over more than one variable",
                        gofmt::print_value(&val)
                    )));
                }
                lazy_int = Some(*n);
            }
            Value::List(l) => {
                for (i, e) in l.iter().enumerate() {
                    iterations.push((
                        Slot::concrete(Value::Int(i as i64)),
                        Slot {
                            v: e.clone(),
                            iface: true,
                        },
                    ));
                }
            }
            Value::StrList(l) => {
                for (i, e) in l.iter().enumerate() {
                    iterations.push((
                        Slot::concrete(Value::Int(i as i64)),
                        Slot::concrete(Value::str(e)),
                    ));
                }
            }
            Value::Map(m) => {
                for (k, e) in m.iter() {
                    iterations.push((
                        Slot::concrete(Value::str(k)),
                        Slot {
                            v: e.clone(),
                            iface: true,
                        },
                    ));
                }
            }
            Value::Invalid => {}
            v => {
                return Err(self.errorf(format!(
                    "range can't iterate over {}",
                    gofmt::print_value(v)
                )));
            }
        }
        let count = lazy_int.map_or(iterations.len() as i64, |n| n.max(0));
        let mut ran = false;
        for i in 0..count {
            ran = true;
            self.charge(1)?;
            let (index, elem) = match lazy_int {
                Some(_) => (
                    Slot::concrete(Value::Invalid),
                    Slot::concrete(Value::Int(i)),
                ),
                None => match iterations.get(i as usize) {
                    Some(pair) => pair.clone(),
                    None => break,
                },
            };
            if decl > 0 {
                if r.pipe.is_assign {
                    let v = if decl > 1 {
                        index.clone()
                    } else {
                        elem.clone()
                    };
                    self.set_var(&r.pipe.decl[0].ident[0], v)?;
                } else {
                    self.set_top_var(1, elem.clone());
                }
            }
            if decl > 1 {
                if r.pipe.is_assign {
                    self.set_var(&r.pipe.decl[1].ident[0], elem.clone())?;
                } else {
                    self.set_top_var(2, index);
                }
            }
            let flow = self.walk_list(&elem, &r.list)?;
            self.pop(mark);
            if let Flow::Break = flow {
                break;
            }
        }
        if !ran && let Some(e) = &r.else_list {
            let flow = self.walk_list(dot, e)?;
            self.pop(mark0);
            return Ok(flow);
        }
        self.pop(mark0);
        Ok(Flow::Normal)
    }

    // -- evaluation -----------------------------------------------------------------------

    fn eval_pipeline(&mut self, dot: &Slot, pipe: &'t Pipe) -> R<Value> {
        self.at = At::Pipe(pipe);
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            self.charge(1)?;
            let v = self.eval_command(dot, cmd, value.take())?;
            // An interface{} result is unwrapped: a nil interface becomes "no value".
            value = Some(match v {
                Value::Nil => Value::Invalid,
                v => v,
            });
        }
        let value = value.unwrap_or(Value::Invalid);
        for var in &pipe.decl {
            if pipe.is_assign {
                self.set_var(&var.ident[0], Slot::concrete(value.clone()))?;
            } else {
                self.vars
                    .push((var.ident[0].clone(), Slot::concrete(value.clone())));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Arg], final_: &Option<Value>) -> R<()> {
        if args.len() > 1 || final_.is_some() {
            let first = args.first().map(Arg::to_go_string).unwrap_or_default();
            return Err(self.errorf(format!("can't give argument to non-function {first}")));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Slot, cmd: &'t Command, final_: Option<Value>) -> R<Value> {
        let Some(first) = cmd.args.first() else {
            return Err(self.errorf("empty command"));
        };
        match first {
            Arg::Field { ident, .. } => {
                return self.eval_field_node(dot, first, ident, Some(&cmd.args), final_);
            }
            Arg::Chain { node, field, .. } => {
                return self.eval_chain_node(dot, first, node, field, Some(&cmd.args), final_);
            }
            Arg::Identifier { name, .. } => {
                return self.eval_function(dot, first, At::Cmd(cmd), name, Some(&cmd.args), final_);
            }
            Arg::Pipe(p) => {
                self.not_a_function(&cmd.args, &final_)?;
                return self.eval_pipeline(dot, p);
            }
            Arg::Variable(v) => return self.eval_variable_node(dot, v, Some(&cmd.args), final_),
            _ => {}
        }
        self.at = At::Arg(first);
        self.not_a_function(&cmd.args, &final_)?;
        match first {
            Arg::Bool { value, .. } => Ok(Value::Bool(*value)),
            Arg::Dot { .. } => Ok(dot.v.clone()),
            Arg::Nil { .. } => Err(self.errorf("nil is not a command")),
            Arg::Number { .. } => self.ideal_constant(first),
            Arg::String { text, .. } => Ok(Value::str(text)),
            _ => Err(self.errorf(format!(
                "can't evaluate command {}",
                quote(&first.to_go_string(), false)
            ))),
        }
    }

    fn ideal_constant(&mut self, n: &'t Arg) -> R<Value> {
        self.at = At::Arg(n);
        let Arg::Number { text, value, .. } = n else {
            return Ok(Value::Invalid);
        };
        let lower = text.to_ascii_lowercase();
        let digits = lower.trim_start_matches(['+', '-']);
        let is_hex_int = digits.starts_with("0x") && !digits.contains('p');
        let is_rune = text.starts_with('\'');
        if value.is_float && !is_hex_int && !is_rune && text.contains(['.', 'e', 'E', 'p', 'P']) {
            return Ok(Value::Float(value.float));
        }
        if value.is_int {
            return Ok(Value::Int(value.int));
        }
        Err(self.errorf(format!("{text} overflows int")))
    }

    fn eval_field_node(
        &mut self,
        dot: &Slot,
        node: &'t Arg,
        ident: &'t [String],
        args: Option<&'t [Arg]>,
        final_: Option<Value>,
    ) -> R<Value> {
        self.at = At::Arg(node);
        self.eval_field_chain(dot, dot.clone(), ident, args, final_)
    }

    fn eval_chain_node(
        &mut self,
        dot: &Slot,
        chain: &'t Arg,
        node: &'t Arg,
        field: &'t [String],
        args: Option<&'t [Arg]>,
        final_: Option<Value>,
    ) -> R<Value> {
        self.at = At::Arg(chain);
        if field.is_empty() {
            return Err(self.errorf("internal error: no fields in evalChainNode"));
        }
        if let Arg::Nil { .. } = node {
            return Err(self.errorf(format!(
                "indirection through explicit nil in {}",
                chain.to_go_string()
            )));
        }
        let pipe = self.eval_arg(dot, None, node)?;
        self.eval_field_chain(dot, Slot::concrete(pipe), field, args, final_)
    }

    fn eval_variable_node(
        &mut self,
        dot: &Slot,
        var: &'t Variable,
        args: Option<&'t [Arg]>,
        final_: Option<Value>,
    ) -> R<Value> {
        self.at = At::Var(var);
        let value = self.var_value(&var.ident[0])?;
        if var.ident.len() == 1 {
            self.not_a_function(args.unwrap_or_default(), &final_)?;
            return Ok(value.v);
        }
        self.eval_field_chain(dot, value, &var.ident[1..], args, final_)
    }

    fn eval_field_chain(
        &mut self,
        dot: &Slot,
        mut receiver: Slot,
        ident: &'t [String],
        args: Option<&'t [Arg]>,
        final_: Option<Value>,
    ) -> R<Value> {
        let Some((last, init)) = ident.split_last() else {
            return Ok(receiver.v);
        };
        for name in init {
            receiver = self.eval_field(dot, name, None, None, receiver)?;
        }
        Ok(self.eval_field(dot, last, args, final_, receiver)?.v)
    }

    fn eval_field(
        &mut self,
        dot: &Slot,
        name: &str,
        args: Option<&'t [Arg]>,
        final_: Option<Value>,
        receiver: Slot,
    ) -> R<Slot> {
        let typ = if receiver.iface {
            "interface {}"
        } else {
            receiver.v.type_name()
        };
        let has_args = args.is_some_and(|a| a.len() > 1) || final_.is_some();
        match &receiver.v {
            Value::Invalid => {
                if self.opts.error_on_missing_key {
                    return Err(
                        self.errorf(format!("nil data; no entry for key {}", quote(name, false)))
                    );
                }
                Ok(Slot::concrete(Value::Invalid))
            }
            Value::Nil => Err(self.errorf(format!("nil pointer evaluating interface {{}}.{name}"))),
            Value::Number(n) if matches!(name, "String" | "Int64" | "Float64") => {
                let n = n.clone();
                self.call_number_method(dot, &n, name, args, final_)
                    .map(Slot::concrete)
            }
            Value::Secret(s) => match s.field(name) {
                Some(v) if SECRET_FIELDS.contains(&name) => {
                    if has_args {
                        return Err(self.errorf(format!(
                            "{name} has arguments but cannot be invoked as function"
                        )));
                    }
                    Ok(Slot::concrete(v))
                }
                _ => Err(self.errorf(format!("can't evaluate field {name} in type {typ}"))),
            },
            Value::Auth(a) => match a.field(name) {
                Some(v) => {
                    if has_args {
                        return Err(self.errorf(format!(
                            "{name} has arguments but cannot be invoked as function"
                        )));
                    }
                    Ok(Slot::concrete(v))
                }
                None => Err(self.errorf(format!("can't evaluate field {name} in type {typ}"))),
            },
            Value::NilPtr(t) => {
                let known = (*t == AUTH_TYPE && AUTH_FIELDS.contains(&name))
                    || (*t == SECRET_TYPE && SECRET_FIELDS.contains(&name))
                    || (*t == super::value::WRAP_INFO_TYPE
                        && ["Token", "TTL", "CreationTime", "WrappedAccessor"].contains(&name));
                if known {
                    Err(self.errorf(format!("nil pointer evaluating {t}.{name}")))
                } else {
                    Err(self.errorf(format!("can't evaluate field {name} in type {t}")))
                }
            }
            Value::Map(m) => {
                if has_args {
                    return Err(self.errorf(format!("{name} is not a method but has arguments")));
                }
                match m.get(name) {
                    Some(v) => Ok(Slot {
                        v: v.clone(),
                        iface: true,
                    }),
                    None if self.opts.error_on_missing_key => {
                        Err(self.errorf(format!("map has no entry for key {}", quote(name, false))))
                    }
                    None => Ok(Slot {
                        v: Value::Nil,
                        iface: true,
                    }),
                }
            }
            _ => Err(self.errorf(format!("can't evaluate field {name} in type {typ}"))),
        }
    }

    /// `json.Number`'s methods `String`, `Int64` and `Float64`, callable as fields.
    fn call_number_method(
        &mut self,
        _dot: &Slot,
        n: &str,
        name: &str,
        args: Option<&'t [Arg]>,
        final_: Option<Value>,
    ) -> R<Value> {
        let given = args.map_or(0, |a| a.len().saturating_sub(1)) + usize::from(final_.is_some());
        if given != 0 {
            return Err(self.errorf(format!(
                "wrong number of args for {name}: want 0 got {given}"
            )));
        }
        match name {
            "String" => Ok(Value::str(n)),
            "Int64" => match n.parse::<i64>() {
                Ok(i) => Ok(Value::Int64(i)),
                Err(e) => {
                    let why = match e.kind() {
                        std::num::IntErrorKind::PosOverflow
                        | std::num::IntErrorKind::NegOverflow => "value out of range",
                        _ => "invalid syntax",
                    };
                    Err(self.errorf(format!(
                        "error calling Int64: strconv.ParseInt: parsing {}: {why}",
                        quote(n, false)
                    )))
                }
            },
            _ => match n.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Value::Float(f)),
                _ => Err(self.errorf(format!(
                    "error calling Float64: strconv.ParseFloat: parsing {}: invalid syntax",
                    quote(n, false)
                ))),
            },
        }
    }

    fn eval_function(
        &mut self,
        dot: &Slot,
        node: &'t Arg,
        call_node: At<'t>,
        name: &str,
        args: Option<&'t [Arg]>,
        final_: Option<Value>,
    ) -> R<Value> {
        self.at = At::Arg(node);
        let Some(f) = funcs::lookup(name) else {
            return Err(self.errorf(format!("{} is not a defined function", quote(name, false))));
        };
        self.charge(1)?;
        let args: &'t [Arg] = args.map_or(&[], |a| a.get(1..).unwrap_or_default());
        let num_in = args.len() + usize::from(final_.is_some());
        let num_fixed = if f.variadic.is_some() {
            f.fixed.len()
        } else {
            args.len()
        };
        if f.variadic.is_some() {
            if num_in < num_fixed {
                return Err(self.errorf(format!(
                    "wrong number of args for {name}: want at least {} got {}",
                    f.fixed.len(),
                    args.len()
                )));
            }
        } else if num_in != f.fixed.len() {
            return Err(self.errorf(format!(
                "wrong number of args for {name}: want {} got {num_in}",
                f.fixed.len()
            )));
        }

        if let Imp::AndOr(is_or) = f.imp {
            let mut v = Value::Invalid;
            for a in args {
                v = self.eval_arg(dot, Some(P::RVal), a)?;
                if v.truth() == is_or {
                    return Ok(v);
                }
            }
            if let Some(fin) = final_ {
                v = self.validate_type(fin, Some(P::RVal))?;
            }
            return Ok(v);
        }

        let mut argv = Vec::with_capacity(num_in);
        let mut i = 0;
        while i < num_fixed && i < args.len() {
            argv.push(self.eval_arg(dot, Some(f.fixed[i]), &args[i])?);
            i += 1;
        }
        if let Some(vt) = f.variadic {
            while i < args.len() {
                argv.push(self.eval_arg(dot, Some(vt), &args[i])?);
                i += 1;
            }
        }
        if let Some(fin) = final_ {
            let t = match f.variadic {
                Some(vt) if num_in > num_fixed => vt,
                _ => f.fixed.get(num_in - 1).copied().unwrap_or(P::Any),
            };
            argv.push(self.validate_type(fin, Some(t))?);
        }
        let Imp::F(imp) = f.imp else {
            return Ok(Value::Invalid);
        };
        match imp(self, argv) {
            Ok(v) => {
                if let Some(s) = v.as_go_string() {
                    self.charge(s.len() as u64 / 64)?;
                }
                Ok(v)
            }
            Err(funcs::CallError::Call(e)) => {
                self.at = call_node;
                Err(self.errorf(format!("error calling {name}: {e}")))
            }
            Err(funcs::CallError::Abort(e)) => Err(e),
        }
    }

    fn validate_type(&self, v: Value, typ: Option<P>) -> R<Value> {
        match (v, typ) {
            (Value::Invalid, None | Some(P::RVal)) => Ok(Value::Invalid),
            (Value::Invalid, Some(P::Any)) => Ok(Value::Nil),
            (Value::Invalid, Some(P::StrSlice)) => Ok(Value::StrList(Default::default())),
            (Value::Invalid, Some(t)) => {
                Err(self.errorf(format!("invalid value; expected {}", t.go_name())))
            }
            (v, None | Some(P::Any) | Some(P::RVal)) => Ok(v),
            (v @ Value::Str(_), Some(P::Str)) => Ok(v),
            (v @ Value::StrList(_), Some(P::StrSlice)) => Ok(v),
            (v, Some(t)) => Err(self.errorf(format!(
                "wrong type for value; expected {}; got {}",
                t.go_name(),
                v.type_name()
            ))),
        }
    }

    fn eval_arg(&mut self, dot: &Slot, typ: Option<P>, n: &'t Arg) -> R<Value> {
        self.at = At::Arg(n);
        match n {
            Arg::Dot { .. } => return self.validate_type(dot.v.clone(), typ),
            Arg::Nil { .. } => {
                return match typ {
                    Some(P::Any) => Ok(Value::Nil),
                    Some(P::RVal) => Ok(Value::Invalid),
                    Some(P::StrSlice) => Ok(Value::StrList(Default::default())),
                    Some(t) => Err(self.errorf(format!("cannot assign nil to {}", t.go_name()))),
                    None => Ok(Value::Invalid),
                };
            }
            Arg::Field { ident, .. } => {
                let v = self.eval_field_node(dot, n, ident, Some(std::slice::from_ref(n)), None)?;
                return self.validate_type(v, typ);
            }
            Arg::Variable(var) => {
                let v = self.eval_variable_node(dot, var, None, None)?;
                return self.validate_type(v, typ);
            }
            Arg::Pipe(p) => {
                let v = self.eval_pipeline(dot, p)?;
                return self.validate_type(v, typ);
            }
            Arg::Identifier { name, .. } => {
                let v = self.eval_function(dot, n, At::Arg(n), name, None, None)?;
                return self.validate_type(v, typ);
            }
            Arg::Chain { node, field, .. } => {
                let v = self.eval_chain_node(dot, n, node, field, None, None)?;
                return self.validate_type(v, typ);
            }
            _ => {}
        }
        match typ {
            Some(P::Str) => match n {
                Arg::String { text, .. } => Ok(Value::str(text)),
                _ => Err(self.errorf(format!("expected string; found {}", n.to_go_string()))),
            },
            Some(P::Any | P::RVal) | None => match n {
                Arg::Bool { value, .. } => Ok(Value::Bool(*value)),
                Arg::Number { .. } => self.ideal_constant(n),
                Arg::String { text, .. } => Ok(Value::str(text)),
                _ => Err(self.errorf(format!(
                    "can't handle assignment of {} to empty interface argument",
                    n.to_go_string()
                ))),
            },
            Some(P::StrSlice) => Err(self.errorf(format!(
                "can't handle {} for arg of type []string",
                n.to_go_string()
            ))),
        }
    }
}
