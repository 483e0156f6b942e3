//! `advanced.scalingModifiers`: a formula over named triggers that replaces their metrics with
//! one composite metric.
//!
//! Upstream (KEDA `pkg/scaling/modifiers/formula.go`, keda.md §6.4) evaluates the formula with
//! expr-lang over a map of trigger name → value and serves the result as `composite-metric`.
//! We parse the subset KEDA users write, with [`winnow`], into a small tree and evaluate it over
//! `f64`:
//!
//! - numbers (`12`, `0.5`, `1e3`), `true`, `false`, `nil`, identifiers (trigger names);
//! - `a ? b : c` (lowest, right-associative), `||`/`or`, `&&`/`and`, comparisons
//!   `== != < <= > >=`, `+ -`, `* / %`, unary `! not -`, `??` (tightest, as in expr-lang),
//!   parentheses;
//! - functions `min(…)`, `max(…)` (one or more arguments), `abs(x)`, `ceil(x)`, `floor(x)`.
//!
//! `a ?? b` yields `b` when `a` is a trigger with no value (not in the environment, e.g. failing
//! under `fallback.behavior: scalingModifiers`) or `nil`. Using a missing trigger anywhere else is
//! an evaluation error naming it. `%` is the floating remainder (expr-lang only allows integers).
//! Formulas are at most [`MAX_FORMULA_LEN`] bytes and [`MAX_NESTING`] levels deep, so no input
//! can exhaust the stack.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;
use winnow::ascii::multispace0;
use winnow::combinator::{cut_err, fail};
use winnow::error::{ContextError, ErrMode, StrContext, StrContextValue};
use winnow::prelude::*;
use winnow::token::take_while;

use crate::fallback::TargetType;

/// Longest formula accepted, in bytes; KEDA formulas are one line.
pub const MAX_FORMULA_LEN: usize = 1024;
/// Deepest nesting of parentheses, unary operators, conditionals and calls.
pub const MAX_NESTING: usize = 32;

/// The metric name KEDA gives the composite metric (no `s<index>-` prefix).
pub const COMPOSITE_METRIC_NAME: &str = "composite-metric";

/// Why a formula (or the `scalingModifiers` block around it) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormulaError {
    /// The formula is empty or only whitespace (webhook: "ScalingModifiers.Formula is mandatory").
    #[error("formula is empty")]
    Empty,
    /// Longer than [`MAX_FORMULA_LEN`].
    #[error("formula is {len} bytes long; at most {max} are accepted")]
    TooLong {
        /// Length of the formula.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not valid syntax: where (1-based column, in characters) and what would have been valid.
    #[error("invalid formula at column {column}: expected {expected}")]
    Syntax {
        /// Column of the offending character.
        column: usize,
        /// What the parser would have accepted there.
        expected: String,
    },
    /// A call to a function we do not provide.
    #[error(
        "unknown function '{name}' at column {column}; expected one of min, max, abs, ceil, floor"
    )]
    UnknownFunction {
        /// The function name as written.
        name: String,
        /// Column of the name.
        column: usize,
    },
    /// A call with the wrong number of arguments.
    #[error("function '{name}' at column {column} takes {expected}, got {got}")]
    Arity {
        /// The function.
        name: &'static str,
        /// Column of the name.
        column: usize,
        /// "1 argument" or "at least 1 argument".
        expected: &'static str,
        /// Arguments given.
        got: usize,
    },
    /// The formula names something that is not a named trigger of the ScaledObject.
    #[error("formula refers to '{name}', which is not the name of a trigger")]
    UnknownTrigger {
        /// The identifier.
        name: String,
    },
    /// The formula parses but cannot run with every trigger bound to -1 (the webhook's check).
    #[error("formula fails on trial values")]
    TrialRun(#[source] EvalError),
}

/// Why evaluating a parsed formula failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EvalError {
    /// A trigger has no value and no `??` supplies one.
    #[error("trigger '{name}' has no value; write '{name} ?? <default>' to supply one")]
    MissingValue {
        /// The trigger name.
        name: String,
    },
    /// An operator got an operand of the wrong kind.
    #[error("'{op}' expects {expected}, found {found}")]
    TypeMismatch {
        /// The operator or function.
        op: &'static str,
        /// What it accepts.
        expected: &'static str,
        /// What it got.
        found: &'static str,
    },
    /// `x % 0`.
    #[error("remainder by zero")]
    RemainderByZero,
    /// The formula's result is a boolean, not a number.
    #[error("formula must produce a number, found {found}")]
    NotANumber {
        /// What it produced.
        found: &'static str,
    },
    /// The result is nil (only `??` chains ending in nil can do that); fallback may apply.
    #[error("formula produced nil")]
    NilResult,
    /// The result is NaN or infinite (for example a division by zero).
    #[error("formula produced a non-finite value")]
    NonFinite,
}

/// Built-in functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Func {
    Min,
    Max,
    Abs,
    Ceil,
    Floor,
}

impl Func {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "min" => Self::Min,
            "max" => Self::Max,
            "abs" => Self::Abs,
            "ceil" => Self::Ceil,
            "floor" => Self::Floor,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Min => "min",
            Self::Max => "max",
            Self::Abs => "abs",
            Self::Ceil => "ceil",
            Self::Floor => "floor",
        }
    }
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Coalesce,
}

impl BinOp {
    fn symbol(self) -> &'static str {
        match self {
            Self::Or => "||",
            Self::And => "&&",
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Add => "+",
            Self::Sub => "-",
            Self::Mul => "*",
            Self::Div => "/",
            Self::Rem => "%",
            Self::Coalesce => "??",
        }
    }
}

/// The parsed formula.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Num(f64),
    Bool(bool),
    Nil,
    Ident(String),
    Not(Box<Node>),
    Neg(Box<Node>),
    /// A left-associative run of operators of one precedence level, kept flat so that long
    /// formulas like `a + b + c + …` evaluate in a loop instead of recursing per operator.
    Chain(Box<Node>, Vec<(BinOp, Node)>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    Call {
        name: String,
        func: Option<Func>,
        /// Bytes from the name to the end of the formula, turned into a column on error.
        from_end: usize,
        args: Vec<Node>,
    },
}

/// A parsed, checked `scalingModifiers.formula`, ready to evaluate many times.
#[derive(Debug, Clone, PartialEq)]
pub struct Formula {
    source: String,
    root: Node,
}

type PResult<T> = winnow::ModalResult<T>;

fn expected(what: &'static str) -> StrContext {
    StrContext::Expected(StrContextValue::Description(what))
}

fn ws(i: &mut &str) -> PResult<()> {
    multispace0.void().parse_next(i)
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Consumes `token` if the input starts with it (a word token must end at a word boundary).
fn eat(i: &mut &str, token: &str) -> bool {
    let Some(rest) = i.strip_prefix(token) else {
        return false;
    };
    let word = token.chars().all(is_ident_char);
    if word && rest.chars().next().is_some_and(is_ident_char) {
        return false;
    }
    *i = rest;
    true
}

fn too_deep(i: &mut &str, depth: usize) -> PResult<()> {
    if depth > MAX_NESTING {
        return cut_err(fail::<_, (), _>)
            .context(expected("at most 32 levels of nesting"))
            .parse_next(i);
    }
    Ok(())
}

fn ternary(i: &mut &str, depth: usize) -> PResult<Node> {
    too_deep(i, depth)?;
    let cond = binary(i, depth, 0)?;
    ws(i)?;
    if i.starts_with('?') && !i.starts_with("??") {
        *i = &i[1..];
        let then = cut_err(|i: &mut &str| ternary(i, depth + 1)).parse_next(i)?;
        ws(i)?;
        if !eat(i, ":") {
            return cut_err(fail)
                .context(expected("':' of the conditional"))
                .parse_next(i);
        }
        let otherwise = cut_err(|i: &mut &str| ternary(i, depth + 1)).parse_next(i)?;
        return Ok(Node::Cond(
            Box::new(cond),
            Box::new(then),
            Box::new(otherwise),
        ));
    }
    Ok(cond)
}

/// Binary levels from loosest to tightest; longer tokens first so `<=` is not read as `<`.
const LEVELS: &[&[(&str, BinOp)]] = &[
    &[("||", BinOp::Or), ("or", BinOp::Or)],
    &[("&&", BinOp::And), ("and", BinOp::And)],
    &[
        ("==", BinOp::Eq),
        ("!=", BinOp::Ne),
        ("<=", BinOp::Le),
        (">=", BinOp::Ge),
        ("<", BinOp::Lt),
        (">", BinOp::Gt),
    ],
    &[("+", BinOp::Add), ("-", BinOp::Sub)],
    &[("*", BinOp::Mul), ("/", BinOp::Div), ("%", BinOp::Rem)],
];

fn binary(i: &mut &str, depth: usize, level: usize) -> PResult<Node> {
    let Some(ops) = LEVELS.get(level) else {
        return unary(i, depth);
    };
    let first = binary(i, depth, level + 1)?;
    let mut rest = Vec::new();
    loop {
        ws(i)?;
        let Some(op) = ops.iter().find_map(|(tok, op)| eat(i, tok).then_some(*op)) else {
            return Ok(chain(first, rest));
        };
        let rhs = cut_err(|i: &mut &str| binary(i, depth, level + 1)).parse_next(i)?;
        rest.push((op, rhs));
    }
}

fn chain(first: Node, rest: Vec<(BinOp, Node)>) -> Node {
    if rest.is_empty() {
        first
    } else {
        Node::Chain(Box::new(first), rest)
    }
}

fn unary(i: &mut &str, depth: usize) -> PResult<Node> {
    too_deep(i, depth)?;
    ws(i)?;
    if i.starts_with('!') && !i.starts_with("!=") {
        *i = &i[1..];
        let inner = cut_err(|i: &mut &str| unary(i, depth + 1)).parse_next(i)?;
        return Ok(Node::Not(Box::new(inner)));
    }
    if eat(i, "not") {
        let inner = cut_err(|i: &mut &str| unary(i, depth + 1)).parse_next(i)?;
        return Ok(Node::Not(Box::new(inner)));
    }
    if eat(i, "-") {
        let inner = cut_err(|i: &mut &str| unary(i, depth + 1)).parse_next(i)?;
        return Ok(Node::Neg(Box::new(inner)));
    }
    if eat(i, "+") {
        return cut_err(|i: &mut &str| unary(i, depth + 1)).parse_next(i);
    }
    coalesce(i, depth)
}

fn coalesce(i: &mut &str, depth: usize) -> PResult<Node> {
    let first = primary(i, depth)?;
    let mut rest = Vec::new();
    loop {
        ws(i)?;
        if !eat(i, "??") {
            return Ok(chain(first, rest));
        }
        let rhs = cut_err(|i: &mut &str| primary(i, depth)).parse_next(i)?;
        rest.push((BinOp::Coalesce, rhs));
    }
}

fn number(i: &mut &str) -> PResult<f64> {
    fn digits<'s>(i: &mut &'s str) -> PResult<&'s str> {
        take_while(1.., |c: char| c.is_ascii_digit()).parse_next(i)
    }
    let start = *i;
    digits.parse_next(i)?;
    let mut probe = *i;
    if eat(&mut probe, ".") && digits.parse_next(&mut probe).is_ok() {
        *i = probe;
    }
    let mut probe = *i;
    if let Some(rest) = probe.strip_prefix(['e', 'E']) {
        probe = rest;
        let _ = eat(&mut probe, "+") || eat(&mut probe, "-");
        let exponent = cut_err(digits)
            .context(expected("digits of the exponent"))
            .parse_next(&mut probe);
        // Report the error where it happened, not where the number started.
        *i = probe;
        exponent?;
    }
    let text = &start[..start.len() - i.len()];
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => cut_err(fail)
            .context(expected("a finite number"))
            .parse_next(i),
    }
}

fn primary(i: &mut &str, depth: usize) -> PResult<Node> {
    ws(i)?;
    let Some(first) = i.chars().next() else {
        return fail.context(expected("an expression")).parse_next(i);
    };
    if first == '(' {
        too_deep(i, depth + 1)?;
        *i = &i[1..];
        let inner = cut_err(|i: &mut &str| ternary(i, depth + 1)).parse_next(i)?;
        ws(i)?;
        if !eat(i, ")") {
            return cut_err(fail).context(expected("')'")).parse_next(i);
        }
        return Ok(inner);
    }
    if first.is_ascii_digit() {
        return number(i).map(Node::Num);
    }
    if is_ident_start(first) {
        let from_end = i.len();
        let name: &str = take_while(1.., is_ident_char).parse_next(i)?;
        let mut probe = *i;
        ws(&mut probe)?;
        if eat(&mut probe, "(") {
            *i = probe;
            too_deep(i, depth + 1)?;
            let args = call_args(i, depth + 1)?;
            return Ok(Node::Call {
                name: name.to_owned(),
                func: Func::from_name(name),
                from_end,
                args,
            });
        }
        return Ok(match name {
            "true" => Node::Bool(true),
            "false" => Node::Bool(false),
            "nil" => Node::Nil,
            _ => Node::Ident(name.to_owned()),
        });
    }
    fail.context(expected("a number, a trigger name, a function call or '('"))
        .parse_next(i)
}

fn call_args(i: &mut &str, depth: usize) -> PResult<Vec<Node>> {
    let mut args = Vec::new();
    ws(i)?;
    if eat(i, ")") {
        return Ok(args);
    }
    loop {
        args.push(cut_err(|i: &mut &str| ternary(i, depth)).parse_next(i)?);
        ws(i)?;
        if eat(i, ")") {
            return Ok(args);
        }
        if !eat(i, ",") {
            return cut_err(fail).context(expected("',' or ')'")).parse_next(i);
        }
    }
}

fn column(source: &str, from_end: usize) -> usize {
    let offset = source.len().saturating_sub(from_end);
    source.get(..offset).map_or(1, |s| s.chars().count() + 1)
}

fn syntax_error(source: &str, rest: &str, err: &ContextError) -> FormulaError {
    let wanted: Vec<String> = err
        .context()
        .filter_map(|c| match c {
            StrContext::Expected(v) => Some(v.to_string()),
            _ => None,
        })
        .collect();
    FormulaError::Syntax {
        column: column(source, rest.len()),
        expected: if wanted.is_empty() {
            "an expression".to_owned()
        } else {
            wanted.join(" or ")
        },
    }
}

/// Checks function names and arities, reporting the first problem in source order.
fn check_calls(source: &str, node: &Node) -> Result<(), FormulaError> {
    match node {
        Node::Num(_) | Node::Bool(_) | Node::Nil | Node::Ident(_) => Ok(()),
        Node::Not(a) | Node::Neg(a) => check_calls(source, a),
        Node::Chain(first, rest) => {
            check_calls(source, first)?;
            rest.iter().try_for_each(|(_, n)| check_calls(source, n))
        }
        Node::Cond(a, b, c) => {
            check_calls(source, a)?;
            check_calls(source, b)?;
            check_calls(source, c)
        }
        Node::Call {
            name,
            func,
            from_end,
            args,
        } => {
            let column = column(source, *from_end);
            let Some(func) = func else {
                return Err(FormulaError::UnknownFunction {
                    name: name.clone(),
                    column,
                });
            };
            let (ok, expected) = match func {
                Func::Min | Func::Max => (!args.is_empty(), "at least 1 argument"),
                Func::Abs | Func::Ceil | Func::Floor => (args.len() == 1, "1 argument"),
            };
            if !ok {
                return Err(FormulaError::Arity {
                    name: func.name(),
                    column,
                    expected,
                    got: args.len(),
                });
            }
            args.iter().try_for_each(|a| check_calls(source, a))
        }
    }
}

fn collect_idents<'a>(node: &'a Node, out: &mut BTreeSet<&'a str>) {
    match node {
        Node::Num(_) | Node::Bool(_) | Node::Nil => {}
        Node::Ident(name) => {
            out.insert(name);
        }
        Node::Not(a) | Node::Neg(a) => collect_idents(a, out),
        Node::Chain(first, rest) => {
            collect_idents(first, out);
            rest.iter().for_each(|(_, n)| collect_idents(n, out));
        }
        Node::Cond(a, b, c) => {
            collect_idents(a, out);
            collect_idents(b, out);
            collect_idents(c, out);
        }
        Node::Call { args, .. } => args.iter().for_each(|a| collect_idents(a, out)),
    }
}

/// A value during evaluation; a missing trigger keeps its name for the error message.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value<'a> {
    Num(f64),
    Bool(bool),
    Nil(Option<&'a str>),
}

impl<'a> Value<'a> {
    fn kind(self) -> &'static str {
        match self {
            Self::Num(_) => "a number",
            Self::Bool(_) => "a boolean",
            Self::Nil(_) => "nil",
        }
    }

    fn num(self, op: &'static str) -> Result<f64, EvalError> {
        match self {
            Self::Num(v) => Ok(v),
            Self::Nil(Some(name)) => Err(EvalError::MissingValue {
                name: name.to_owned(),
            }),
            other => Err(EvalError::TypeMismatch {
                op,
                expected: "a number",
                found: other.kind(),
            }),
        }
    }

    fn boolean(self, op: &'static str) -> Result<bool, EvalError> {
        match self {
            Self::Bool(v) => Ok(v),
            Self::Nil(Some(name)) => Err(EvalError::MissingValue {
                name: name.to_owned(),
            }),
            other => Err(EvalError::TypeMismatch {
                op,
                expected: "a boolean",
                found: other.kind(),
            }),
        }
    }
}

fn eval_node<'a>(node: &'a Node, env: &BTreeMap<String, f64>) -> Result<Value<'a>, EvalError> {
    Ok(match node {
        Node::Num(v) => Value::Num(*v),
        Node::Bool(b) => Value::Bool(*b),
        Node::Nil => Value::Nil(None),
        Node::Ident(name) => env
            .get(name)
            .map_or(Value::Nil(Some(name)), |v| Value::Num(*v)),
        Node::Not(a) => Value::Bool(!eval_node(a, env)?.boolean("!")?),
        Node::Neg(a) => Value::Num(-eval_node(a, env)?.num("-")?),
        Node::Cond(c, a, b) => {
            if eval_node(c, env)?.boolean("?:")? {
                eval_node(a, env)?
            } else {
                eval_node(b, env)?
            }
        }
        Node::Chain(first, rest) => {
            let mut acc = eval_node(first, env)?;
            for (op, rhs) in rest {
                acc = eval_binary(*op, acc, rhs, env)?;
            }
            acc
        }
        Node::Call { func, args, .. } => {
            let Some(func) = func else {
                return Err(EvalError::TypeMismatch {
                    op: "call",
                    expected: "a known function",
                    found: "an unknown one",
                });
            };
            let name = func.name();
            let mut values = args.iter().map(|a| eval_node(a, env)?.num(name));
            let first = values.next().transpose()?.unwrap_or(f64::NAN);
            Value::Num(match func {
                Func::Min => values.try_fold(first, |acc, v| v.map(|v| acc.min(v)))?,
                Func::Max => values.try_fold(first, |acc, v| v.map(|v| acc.max(v)))?,
                Func::Abs => first.abs(),
                Func::Ceil => first.ceil(),
                Func::Floor => first.floor(),
            })
        }
    })
}

fn eval_binary<'a>(
    op: BinOp,
    l: Value<'a>,
    b: &'a Node,
    env: &BTreeMap<String, f64>,
) -> Result<Value<'a>, EvalError> {
    let sym = op.symbol();
    // Short-circuit and coalescing decide on the left side before evaluating the right.
    match op {
        BinOp::Or => {
            return Ok(Value::Bool(
                l.boolean(sym)? || eval_node(b, env)?.boolean(sym)?,
            ));
        }
        BinOp::And => {
            return Ok(Value::Bool(
                l.boolean(sym)? && eval_node(b, env)?.boolean(sym)?,
            ));
        }
        BinOp::Coalesce => {
            return match l {
                Value::Nil(_) => eval_node(b, env),
                v => Ok(v),
            };
        }
        _ => {}
    }
    let r = eval_node(b, env)?;
    Ok(match op {
        BinOp::Eq | BinOp::Ne => {
            // A missing trigger is nil here, so `x == nil` tests for it (as in expr-lang).
            let equal = match (l, r) {
                (Value::Num(x), Value::Num(y)) => x == y,
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::Nil(_), Value::Nil(_)) => true,
                _ => false,
            };
            Value::Bool(equal == (op == BinOp::Eq))
        }
        BinOp::Lt => Value::Bool(l.num(sym)? < r.num(sym)?),
        BinOp::Le => Value::Bool(l.num(sym)? <= r.num(sym)?),
        BinOp::Gt => Value::Bool(l.num(sym)? > r.num(sym)?),
        BinOp::Ge => Value::Bool(l.num(sym)? >= r.num(sym)?),
        BinOp::Add => Value::Num(l.num(sym)? + r.num(sym)?),
        BinOp::Sub => Value::Num(l.num(sym)? - r.num(sym)?),
        BinOp::Mul => Value::Num(l.num(sym)? * r.num(sym)?),
        BinOp::Div => Value::Num(l.num(sym)? / r.num(sym)?),
        BinOp::Rem => {
            let (x, y) = (l.num(sym)?, r.num(sym)?);
            if y == 0.0 {
                return Err(EvalError::RemainderByZero);
            }
            Value::Num(x % y)
        }
        BinOp::Or | BinOp::And | BinOp::Coalesce => Value::Nil(None),
    })
}

impl Formula {
    /// Parses and checks a formula; the error names the column and what was expected there.
    ///
    /// # Errors
    /// [`FormulaError::Empty`], [`FormulaError::TooLong`], [`FormulaError::Syntax`],
    /// [`FormulaError::UnknownFunction`] or [`FormulaError::Arity`].
    pub fn parse(source: &str) -> Result<Self, FormulaError> {
        if source.trim().is_empty() {
            return Err(FormulaError::Empty);
        }
        if source.len() > MAX_FORMULA_LEN {
            return Err(FormulaError::TooLong {
                len: source.len(),
                max: MAX_FORMULA_LEN,
            });
        }
        let mut rest = source;
        let root = match ternary(&mut rest, 0) {
            Ok(root) => root,
            Err(ErrMode::Backtrack(e) | ErrMode::Cut(e)) => {
                return Err(syntax_error(source, rest, &e));
            }
            Err(ErrMode::Incomplete(_)) => {
                return Err(FormulaError::Syntax {
                    column: column(source, rest.len()),
                    expected: "more input".to_owned(),
                });
            }
        };
        let _ = ws(&mut rest);
        if !rest.is_empty() {
            return Err(FormulaError::Syntax {
                column: column(source, rest.len()),
                expected: "an operator or the end of the formula".to_owned(),
            });
        }
        check_calls(source, &root)?;
        Ok(Self {
            source: source.to_owned(),
            root,
        })
    }

    /// The formula as written, for status and messages.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Identifiers the formula reads, so the caller can check them against trigger names.
    #[must_use]
    pub fn identifiers(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        collect_idents(&self.root, &mut out);
        out
    }

    /// The webhook's check (keda.md §4.1 rule 15): every identifier is a trigger name, and the
    /// formula runs with every trigger bound to -1.
    ///
    /// # Errors
    /// [`FormulaError::UnknownTrigger`] or [`FormulaError::TrialRun`].
    pub fn validate(&self, trigger_names: &BTreeSet<String>) -> Result<(), FormulaError> {
        if let Some(name) = self
            .identifiers()
            .into_iter()
            .find(|n| !trigger_names.contains(*n))
        {
            return Err(FormulaError::UnknownTrigger {
                name: name.to_owned(),
            });
        }
        let env = trigger_names.iter().map(|n| (n.clone(), -1.0)).collect();
        match self.eval(&env) {
            Ok(_) | Err(EvalError::NonFinite | EvalError::NilResult) => Ok(()),
            Err(e) => Err(FormulaError::TrialRun(e)),
        }
    }

    /// Evaluates over trigger name → value; a trigger absent from `env` has no value.
    ///
    /// # Errors
    /// Any [`EvalError`]; [`EvalError::NilResult`] lets the caller apply fallback.
    pub fn eval(&self, env: &BTreeMap<String, f64>) -> Result<f64, EvalError> {
        match eval_node(&self.root, env)? {
            Value::Num(v) if v.is_finite() => Ok(v),
            Value::Num(_) => Err(EvalError::NonFinite),
            Value::Bool(_) => Err(EvalError::NotANumber { found: "a boolean" }),
            Value::Nil(Some(name)) => Err(EvalError::MissingValue {
                name: name.to_owned(),
            }),
            Value::Nil(None) => Err(EvalError::NilResult),
        }
    }
}

/// Why a `scalingModifiers` block is unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModifiersError {
    /// The formula is invalid.
    #[error("invalid scalingModifiers.formula")]
    Formula(#[source] FormulaError),
    /// `target` is not a float above zero.
    #[error("scalingModifiers.target {value:?} must be a number above 0")]
    Target {
        /// The value as written.
        value: String,
    },
    /// `activationTarget` is not a float.
    #[error("scalingModifiers.activationTarget {value:?} must be a number")]
    ActivationTarget {
        /// The value as written.
        value: String,
    },
}

/// A checked `advanced.scalingModifiers` block.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingModifiers {
    /// The formula.
    pub formula: Formula,
    /// `target`: the composite metric's target.
    pub target: f64,
    /// True when `target` is written as an integer: upstream only allows fallback then
    /// (keda.md §6.3 QUIRK, `"2.5"` silently disables fallback).
    pub target_is_integer: bool,
    /// `activationTarget` (default 0): active ⇔ composite value is strictly above it.
    pub activation_target: f64,
    /// `metricType` (default AverageValue).
    pub metric_type: TargetType,
}

impl ScalingModifiers {
    /// Builds the block from the strings the CRD holds.
    ///
    /// # Errors
    /// [`ModifiersError`] naming the field at fault.
    pub fn new(
        formula: &str,
        target: &str,
        activation_target: Option<&str>,
        metric_type: TargetType,
    ) -> Result<Self, ModifiersError> {
        let formula = Formula::parse(formula).map_err(ModifiersError::Formula)?;
        let t = target.trim();
        let target_value = t
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0)
            .ok_or_else(|| ModifiersError::Target {
                value: target.to_owned(),
            })?;
        let activation = match activation_target.map(str::trim) {
            None | Some("") => 0.0,
            Some(a) => a
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| ModifiersError::ActivationTarget {
                    value: a.to_owned(),
                })?,
        };
        Ok(Self {
            formula,
            target: target_value,
            target_is_integer: t.parse::<i64>().is_ok_and(|v| v > 0),
            activation_target: activation,
            metric_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    fn eval(src: &str, pairs: &[(&str, f64)]) -> Result<f64, EvalError> {
        Formula::parse(src).unwrap().eval(&env(pairs))
    }

    #[test]
    fn evaluation_table() {
        let e = [("a", 10.0), ("b", 4.0), ("queue", 7.0)];
        let cases: &[(&str, f64)] = &[
            ("1 + 2 * 3", 7.0),
            ("(1 + 2) * 3", 9.0),
            ("a / b", 2.5),
            ("a % b", 2.0),
            ("-a + 3", -7.0),
            ("a - b - 1", 5.0),
            ("1e2 + 0.5", 100.5),
            ("a > b ? a : b", 10.0),
            ("a < b ? a : b", 4.0),
            ("a > 5 && b > 5 ? 1 : 0", 0.0),
            ("a > 5 || b > 5 ? 1 : 0", 1.0),
            ("a > 5 and not (b > 5) ? 1 : 0", 1.0),
            ("!(a == 10) ? 1 : 2", 2.0),
            ("a != b ? 1 : 2", 1.0),
            ("a >= 10 ? 1 : 2", 1.0),
            ("a <= 9 ? 1 : 2", 2.0),
            ("min(a, b, queue)", 4.0),
            ("max(a, b, queue)", 10.0),
            ("abs(b - a)", 6.0),
            ("ceil(a / b)", 3.0),
            ("floor(a / b)", 2.0),
            ("missing ?? 3", 3.0),
            ("a ?? 3", 10.0),
            ("missing ?? other ?? 1", 1.0),
            ("(missing ?? 0) + queue", 7.0),
            ("-missing ?? 2", -2.0),
            ("a > 1 ? b > 1 ? 1 : 2 : 3", 1.0),
            ("  max( a ,b )  ", 10.0),
            ("order + 1", 8.0),
            ("missing == nil ? 1 : 2", 1.0),
            ("a == nil ? 1 : 2", 2.0),
            ("2e1 + 1E-1", 20.1),
        ];
        let e2 = [("a", 10.0), ("b", 4.0), ("queue", 7.0), ("order", 7.0)];
        for (src, want) in cases {
            let got = Formula::parse(src).unwrap().eval(&env(&e2));
            assert_eq!(got, Ok(*want), "{src}");
        }
        assert_eq!(eval("a + b", &e), Ok(14.0));
    }

    #[test]
    fn keda_docs_example_formula() {
        // From the scalingModifiers docs: average of two triggers, ternary on a third.
        let f = Formula::parse("trig_one < 2 ? trig_one + trig_two : 1").unwrap();
        assert_eq!(
            f.eval(&env(&[("trig_one", 1.0), ("trig_two", 3.0)])),
            Ok(4.0)
        );
        assert_eq!(
            f.eval(&env(&[("trig_one", 5.0), ("trig_two", 3.0)])),
            Ok(1.0)
        );
        assert_eq!(
            f.identifiers().into_iter().collect::<Vec<_>>(),
            ["trig_one", "trig_two"]
        );
    }

    #[test]
    fn syntax_errors_name_the_column_and_what_was_expected() {
        let cases: &[(&str, usize, &str)] = &[
            ("1 +", 4, "an expression"),
            (
                "1 + )",
                5,
                "a number, a trigger name, a function call or '('",
            ),
            ("(a + 1", 7, "')'"),
            ("a ? 1", 6, "':' of the conditional"),
            ("a b", 3, "an operator or the end of the formula"),
            ("max(a b)", 7, "',' or ')'"),
            ("1e", 3, "digits of the exponent"),
            ("a & b", 3, "an operator or the end of the formula"),
            (
                "é + 1",
                1,
                "a number, a trigger name, a function call or '('",
            ),
        ];
        for (src, column, expected) in cases {
            let err = Formula::parse(src).unwrap_err();
            assert_eq!(
                err,
                FormulaError::Syntax {
                    column: *column,
                    expected: (*expected).to_owned()
                },
                "{src}"
            );
        }
        assert_eq!(
            Formula::parse("1 +").unwrap_err().to_string(),
            "invalid formula at column 4: expected an expression"
        );
    }

    #[test]
    fn unknown_functions_and_arity_are_rejected_with_their_column() {
        assert_eq!(
            Formula::parse("1 + sqrt(a)").unwrap_err(),
            FormulaError::UnknownFunction {
                name: "sqrt".into(),
                column: 5
            }
        );
        assert_eq!(
            Formula::parse("abs(a, b)").unwrap_err(),
            FormulaError::Arity {
                name: "abs",
                column: 1,
                expected: "1 argument",
                got: 2
            }
        );
        assert!(matches!(
            Formula::parse("min()").unwrap_err(),
            FormulaError::Arity { got: 0, .. }
        ));
        assert_eq!(Formula::parse("  ").unwrap_err(), FormulaError::Empty);
    }

    #[test]
    fn evaluation_errors() {
        assert_eq!(
            eval("gone + 1", &[]),
            Err(EvalError::MissingValue {
                name: "gone".into()
            })
        );
        assert_eq!(
            eval("gone", &[]),
            Err(EvalError::MissingValue {
                name: "gone".into()
            })
        );
        assert_eq!(eval("nil ?? nil", &[]), Err(EvalError::NilResult));
        assert_eq!(
            eval("1 > 0", &[]),
            Err(EvalError::NotANumber { found: "a boolean" })
        );
        assert_eq!(eval("1 / 0", &[]), Err(EvalError::NonFinite));
        assert_eq!(eval("1 % 0", &[]), Err(EvalError::RemainderByZero));
        assert!(matches!(
            eval("true + 1", &[]),
            Err(EvalError::TypeMismatch { .. })
        ));
        assert!(matches!(
            eval("1 ? 2 : 3", &[]),
            Err(EvalError::TypeMismatch { .. })
        ));
    }

    #[test]
    fn nesting_and_length_are_bounded() {
        let deep = format!("{}1{}", "(".repeat(40), ")".repeat(40));
        assert!(matches!(
            Formula::parse(&deep),
            Err(FormulaError::Syntax { .. })
        ));
        let ok = format!("{}a{}", "(a + (b * ".repeat(15), "))".repeat(15));
        let e = env(&[("a", 1.0), ("b", 1.0)]);
        assert_eq!(Formula::parse(&ok).unwrap().eval(&e), Ok(16.0));
        assert!(matches!(
            Formula::parse(&"-".repeat(200)),
            Err(FormulaError::Syntax { .. })
        ));
        let long = vec!["1"; 600].join("+");
        assert!(matches!(
            Formula::parse(&long),
            Err(FormulaError::TooLong { .. })
        ));
        let chain = vec!["1"; 500].join("+");
        assert_eq!(
            Formula::parse(&chain).unwrap().eval(&BTreeMap::new()),
            Ok(500.0)
        );
    }

    #[test]
    fn validate_mirrors_the_webhook_trial_run() {
        let names: BTreeSet<String> = ["a".to_owned(), "b".to_owned()].into();
        assert!(Formula::parse("a + b").unwrap().validate(&names).is_ok());
        assert_eq!(
            Formula::parse("a + c").unwrap().validate(&names),
            Err(FormulaError::UnknownTrigger { name: "c".into() })
        );
        assert!(matches!(
            Formula::parse("a > 0").unwrap().validate(&names),
            Err(FormulaError::TrialRun(EvalError::NotANumber { .. }))
        ));
    }

    #[test]
    fn modifiers_block_parses_targets_like_the_crd_strings() {
        let m = ScalingModifiers::new("a + b", "10", None, TargetType::AverageValue).unwrap();
        assert_eq!(
            (m.target, m.target_is_integer, m.activation_target),
            (10.0, true, 0.0)
        );
        let m = ScalingModifiers::new("a", "2.5", Some("1.5"), TargetType::Value).unwrap();
        assert_eq!(
            (m.target, m.target_is_integer, m.activation_target),
            (2.5, false, 1.5)
        );
        assert!(matches!(
            ScalingModifiers::new("a", "0", None, TargetType::Value),
            Err(ModifiersError::Target { .. })
        ));
        assert!(matches!(
            ScalingModifiers::new("a +", "1", None, TargetType::Value),
            Err(ModifiersError::Formula(_))
        ));
    }

    fn formula_text() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just("missing".to_owned()),
            Just("1".to_owned()),
            Just("2.5".to_owned()),
            Just("0".to_owned()),
            Just("+".to_owned()),
            Just("-".to_owned()),
            Just("*".to_owned()),
            Just("/".to_owned()),
            Just("%".to_owned()),
            Just("??".to_owned()),
            Just("?".to_owned()),
            Just(":".to_owned()),
            Just("(".to_owned()),
            Just(")".to_owned()),
            Just("&&".to_owned()),
            Just("||".to_owned()),
            Just("!".to_owned()),
            Just("<".to_owned()),
            Just(">=".to_owned()),
            Just("==".to_owned()),
            Just("min(".to_owned()),
            Just("max(".to_owned()),
            Just("abs(".to_owned()),
            Just(",".to_owned()),
            Just(" ".to_owned()),
        ];
        proptest::collection::vec(token, 0..40).prop_map(|t| t.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_text_never_panics(src in "\\PC{0,80}") {
            if let Ok(f) = Formula::parse(&src) {
                let _ = f.eval(&env(&[("a", 1.0)]));
            }
        }

        #[test]
        fn token_soup_never_panics_and_is_deterministic(
            src in formula_text(),
            a in -1e6f64..1e6,
            b in -1e6f64..1e6,
        ) {
            let first = Formula::parse(&src);
            prop_assert_eq!(&first, &Formula::parse(&src));
            if let Ok(f) = first {
                let e = env(&[("a", a), ("b", b)]);
                let r1 = f.eval(&e);
                prop_assert_eq!(r1, f.eval(&e));
            }
        }

        #[test]
        fn errors_point_inside_the_formula(src in formula_text()) {
            if let Err(FormulaError::Syntax { column, .. }) = Formula::parse(&src) {
                prop_assert!(column >= 1 && column <= src.chars().count() + 1);
            }
        }
    }
}
