//! Threshold expressions: numbers, station attributes and arithmetic.
//!
//! `"station.guarantee_level + 0.5"` is parsed once and evaluated per station when rules are
//! compiled, so evaluation at run time compares against a plain `f64`.

use std::collections::BTreeSet;
use tidewatch_ingest::Station;

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Number(f64),
    /// `station.<name>`
    Attribute(String),
    Neg(Box<Expr>),
    Binary(Box<Expr>, Op, Box<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

/// A syntax error at a byte offset in the expression text.
#[derive(Clone, Debug, PartialEq)]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}

impl Expr {
    pub fn parse(text: &str) -> Result<Expr, ExprError> {
        let mut p = Parser { text, pos: 0 };
        let e = p.sum()?;
        p.skip_ws();
        if p.pos < text.len() {
            return Err(p.error(format!("unexpected {:?}", &text[p.pos..])));
        }
        Ok(e)
    }

    /// The value for one station, or the first attribute it lacks.
    pub fn eval(&self, station: &Station) -> Result<f64, String> {
        Ok(match self {
            Expr::Number(n) => *n,
            Expr::Attribute(name) => station.attribute(name).ok_or_else(|| name.clone())?,
            Expr::Neg(e) => -e.eval(station)?,
            Expr::Binary(a, op, b) => {
                let (a, b) = (a.eval(station)?, b.eval(station)?);
                match op {
                    Op::Add => a + b,
                    Op::Sub => a - b,
                    Op::Mul => a * b,
                    Op::Div => a / b,
                }
            }
        })
    }

    /// The value if it does not depend on the station.
    pub fn constant(&self) -> Option<f64> {
        match self {
            Expr::Number(n) => Some(*n),
            Expr::Attribute(_) => None,
            Expr::Neg(e) => e.constant().map(|v| -v),
            Expr::Binary(a, op, b) => {
                let (a, b) = (a.constant()?, b.constant()?);
                Some(match op {
                    Op::Add => a + b,
                    Op::Sub => a - b,
                    Op::Mul => a * b,
                    Op::Div => a / b,
                })
            }
        }
    }

    pub fn attributes(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut BTreeSet<&'a str>) {
        match self {
            Expr::Number(_) => {}
            Expr::Attribute(a) => {
                out.insert(a);
            }
            Expr::Neg(e) => e.collect(out),
            Expr::Binary(a, _, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }
}

struct Parser<'t> {
    text: &'t str,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, message: String) -> ExprError {
        ExprError { offset: self.pos, message }
    }

    fn skip_ws(&mut self) {
        while self.text[self.pos..].starts_with([' ', '\t']) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.text[self.pos..].chars().next()
    }

    fn sum(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.product()?;
        while let Some(c @ ('+' | '-')) = self.peek() {
            self.pos += 1;
            let op = if c == '+' { Op::Add } else { Op::Sub };
            left = Expr::Binary(Box::new(left), op, Box::new(self.product()?));
        }
        Ok(left)
    }

    fn product(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.unary()?;
        while let Some(c @ ('*' | '/')) = self.peek() {
            self.pos += 1;
            let op = if c == '*' { Op::Mul } else { Op::Div };
            left = Expr::Binary(Box::new(left), op, Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        match self.peek() {
            Some('-') => {
                self.pos += 1;
                Ok(Expr::Neg(Box::new(self.unary()?)))
            }
            Some('(') => {
                self.pos += 1;
                let e = self.sum()?;
                if self.peek() != Some(')') {
                    return Err(self.error("expected ')'".into()));
                }
                self.pos += 1;
                Ok(e)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => {
                let start = self.pos;
                let rest = &self.text[start..];
                let len = rest
                    .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_' || c == 'e' || c == 'E'))
                    .unwrap_or(rest.len());
                let digits: String = rest[..len].chars().filter(|&c| c != '_').collect();
                let n = digits.parse::<f64>().map_err(|_| self.error(format!("{:?} is not a number", &rest[..len])))?;
                self.pos += len;
                Ok(Expr::Number(n))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                let rest = &self.text[start..];
                let len =
                    rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).unwrap_or(rest.len());
                let word = &rest[..len];
                match word.strip_prefix("station.") {
                    Some(attr) if !attr.is_empty() && !attr.contains('.') => {
                        self.pos += len;
                        Ok(Expr::Attribute(attr.to_owned()))
                    }
                    _ => Err(self.error(format!("unknown name {word:?}: write a number or station.<attribute>"))),
                }
            }
            Some(c) => Err(self.error(format!("unexpected {c:?}"))),
            None => Err(self.error("expected a number or station.<attribute>".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn station() -> Station {
        let reg = tidewatch_ingest::Registry::from_toml_str(
            "[[station]]\nid='a'\nname='A'\ndomain='water'\nlocation=[120.0,30.0]\nregion='33'\nattributes={warning_level=4.5,guarantee_level=6.0}",
        )
        .unwrap();
        reg.stations()[0].clone()
    }

    #[test]
    fn attributes_and_arithmetic() {
        let e = Expr::parse("station.guarantee_level + 0.5").unwrap();
        assert_eq!(e.eval(&station()), Ok(6.5));
        assert_eq!(
            Expr::parse("(station.warning_level + station.guarantee_level) / 2").unwrap().eval(&station()),
            Ok(5.25)
        );
        assert_eq!(Expr::parse("-2 * 3 + 1").unwrap().constant(), Some(-5.0));
        assert_eq!(Expr::parse("station.depth").unwrap().eval(&station()), Err("depth".into()));
    }

    #[test]
    fn syntax_errors_point_at_the_offending_character() {
        let e = Expr::parse("station.warning_level + ").unwrap_err();
        assert_eq!(e.offset, 24);
        let e = Expr::parse("warning_level").unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.message.contains("station.<attribute>"));
        let e = Expr::parse("1 + 2 )").unwrap_err();
        assert_eq!(e.offset, 6);
    }

    proptest! {
        #[test]
        fn any_text_parses_or_errors_inside_it(s in "[ -~]{0,30}") {
            if let Err(e) = Expr::parse(&s) {
                prop_assert!(e.offset <= s.len());
            }
        }
    }
}
