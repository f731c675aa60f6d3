//! A small builder for the few fixed statements the runtime sends.
//!
//! The statements are written out as SQL rather than assembled with sea-query because their
//! exact shape is what makes them correct: assignment order matters on MySQL, which evaluates
//! `SET` left to right, and each one must stay a single statement.

use std::fmt::Write as _;

use sea_orm::{DbBackend, Statement, Value};

pub(crate) struct Sql {
    backend: DbBackend,
    text: String,
    values: Vec<Value>,
}

impl Sql {
    pub(crate) fn new(backend: DbBackend) -> Self {
        Sql {
            backend,
            text: String::with_capacity(512),
            values: Vec::new(),
        }
    }

    pub(crate) fn backend(&self) -> DbBackend {
        self.backend
    }

    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.text.push_str(sql);
        self
    }

    /// A quoted identifier.
    pub(crate) fn ident(&mut self, name: &str) -> &mut Self {
        let quote = match self.backend {
            DbBackend::MySql => '`',
            _ => '"',
        };
        self.text.push(quote);
        for c in name.chars() {
            if c == quote {
                self.text.push(quote);
            }
            self.text.push(c);
        }
        self.text.push(quote);
        self
    }

    /// `a, b, c`, quoted.
    pub(crate) fn idents<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) -> &mut Self {
        for (i, name) in names.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.ident(name);
        }
        self
    }

    /// `?, ?, ?`: one bound parameter per value.
    pub(crate) fn params<V: Into<Value>>(
        &mut self,
        values: impl IntoIterator<Item = V>,
    ) -> &mut Self {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.param(value);
        }
        self
    }

    /// `alias.column`.
    pub(crate) fn qualified(&mut self, alias: &str, column: &str) -> &mut Self {
        self.ident(alias).push(".").ident(column)
    }

    /// A table name, with its schema when it has one.
    pub(crate) fn table(&mut self, schema: Option<&str>, table: &str) -> &mut Self {
        if let Some(schema) = schema {
            self.ident(schema).push(".");
        }
        self.ident(table)
    }

    /// A bound parameter.
    pub(crate) fn param(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => {
                let _ = write!(self.text, "${}", self.values.len());
            }
            _ => self.text.push('?'),
        }
        self
    }

    pub(crate) fn build(self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.text, self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_numbers_parameters_per_backend() {
        let mut pg = Sql::new(DbBackend::Postgres);
        pg.push("SELECT ")
            .ident("we\"ird")
            .push(" WHERE ")
            .param(1)
            .push(" = ")
            .param(2);
        assert_eq!(pg.build().sql, r#"SELECT "we""ird" WHERE $1 = $2"#);

        let mut my = Sql::new(DbBackend::MySql);
        my.push("SELECT ")
            .table(Some("app"), "users")
            .push(" WHERE ")
            .param(1);
        assert_eq!(my.build().sql, "SELECT `app`.`users` WHERE ?");
    }
}
