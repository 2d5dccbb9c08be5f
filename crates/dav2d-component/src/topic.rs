//! Topic templates, shared by the broker connectors: `plant/{key}/temperature`
//! or `plant/{key}/{stream}` for MQTT (wildcards `+` and a final `#`),
//! `plant.{key}.temperature` for NATS (`*` and a final `>`); the filter to
//! subscribe with, the stream and key a concrete topic names, and the topic
//! a sink publishes (stream, key) to.

/// The separators and wildcards of a broker's topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// `a/b/c`, `+` for one level, `#` for the rest.
    Mqtt,
    /// `a.b.c`, `*` for one token, `>` for the rest.
    Nats,
}

impl Syntax {
    fn separator(self) -> char {
        match self {
            Syntax::Mqtt => '/',
            Syntax::Nats => '.',
        }
    }

    fn one(self) -> &'static str {
        match self {
            Syntax::Mqtt => "+",
            Syntax::Nats => "*",
        }
    }

    fn rest(self) -> &'static str {
        match self {
            Syntax::Mqtt => "#",
            Syntax::Nats => ">",
        }
    }
}

/// Where a broker connector's messages go: a topic template, and the
/// stream they feed unless the template names one (`{stream}`).
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// The template, e.g. `plant/{key}/temperature`.
    pub topic: TopicTemplate,
    /// The stream, unless the topic names it.
    pub stream: Option<String>,
}

impl Route {
    /// The (stream, key) of `topic` by the first route it matches.
    pub fn resolve<'t>(routes: &[Route], topic: &'t str) -> Option<(String, &'t str)> {
        routes.iter().find_map(|route| {
            let (stream, key) = route.topic.match_topic(topic)?;
            Some((stream.or(route.stream.as_deref())?.to_string(), key))
        })
    }
}

/// A parsed topic template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicTemplate {
    syntax: Syntax,
    levels: Vec<Level>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Level {
    Literal(String),
    Key,
    Stream,
    Any,
    Rest,
}

impl TopicTemplate {
    /// Parses an MQTT `template`, saying what is wrong with it.
    pub fn parse(template: &str) -> Result<TopicTemplate, String> {
        Self::parse_as(template, Syntax::Mqtt)
    }

    /// Parses `template` in `syntax`, saying what is wrong with it.
    pub fn parse_as(template: &str, syntax: Syntax) -> Result<TopicTemplate, String> {
        let sep = syntax.separator();
        if template.is_empty() {
            return Err(format!(
                "a topic template is empty; write e.g. plant{sep}{{key}}{sep}temperature"
            ));
        }
        let parts: Vec<&str> = template.split(sep).collect();
        let mut levels = Vec::with_capacity(parts.len());
        let (one, rest) = (syntax.one(), syntax.rest());
        for (i, part) in parts.iter().enumerate() {
            levels.push(match *part {
                "{key}" => Level::Key,
                "{stream}" => Level::Stream,
                p if p == one => Level::Any,
                p if p == rest && i + 1 == parts.len() => Level::Rest,
                p if p == rest => {
                    return Err(format!("'{template}': {rest} may only be the last level"));
                }
                literal if literal.contains(['{', '}', '+', '#', '*', '>']) => {
                    return Err(format!(
                        "'{template}': level '{literal}' mixes a placeholder or wildcard with text; a level is {{key}}, {{stream}}, {one}, {rest} or plain text"
                    ));
                }
                literal => Level::Literal(literal.to_string()),
            });
        }
        let keys = levels.iter().filter(|l| **l == Level::Key).count();
        let streams = levels.iter().filter(|l| **l == Level::Stream).count();
        if keys > 1 || streams > 1 {
            return Err(format!(
                "'{template}': {{key}} and {{stream}} may each appear once"
            ));
        }
        Ok(TopicTemplate { syntax, levels })
    }

    /// Whether the template names the stream (`{stream}`).
    pub fn names_stream(&self) -> bool {
        self.levels.contains(&Level::Stream)
    }

    /// The filter to subscribe with (placeholders become one-level wildcards).
    pub fn filter(&self) -> String {
        let (one, rest) = (self.syntax.one(), self.syntax.rest());
        let parts: Vec<&str> = self
            .levels
            .iter()
            .map(|level| match level {
                Level::Literal(text) => text.as_str(),
                Level::Key | Level::Stream | Level::Any => one,
                Level::Rest => rest,
            })
            .collect();
        parts.join(&self.syntax.separator().to_string())
    }

    /// The topic for `stream` and `key` (a sink's template).
    pub fn topic_for(&self, stream: &str, key: &str) -> String {
        let parts: Vec<&str> = self
            .levels
            .iter()
            .map(|level| match level {
                Level::Literal(text) => text.as_str(),
                Level::Key => key,
                Level::Stream => stream,
                Level::Any => "_",
                Level::Rest => "_",
            })
            .collect();
        parts.join(&self.syntax.separator().to_string())
    }

    /// The (stream, key) a concrete `topic` names, if it matches; the
    /// stream is `None` when the template has no `{stream}`.
    pub fn match_topic<'t>(&self, topic: &'t str) -> Option<(Option<&'t str>, &'t str)> {
        let mut parts = topic.split(self.syntax.separator());
        let (mut stream, mut key) = (None, "");
        for level in &self.levels {
            match level {
                Level::Rest => return Some((stream, key)),
                Level::Literal(text) => {
                    if parts.next()? != text {
                        return None;
                    }
                }
                Level::Any => {
                    parts.next()?;
                }
                Level::Key => key = parts.next()?,
                Level::Stream => stream = Some(parts.next()?),
            }
        }
        parts.next().is_none().then_some((stream, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_map_topics_to_streams_and_keys() {
        let t = TopicTemplate::parse("plant/{key}/temperature").unwrap();
        assert_eq!(t.filter(), "plant/+/temperature");
        assert_eq!(
            t.match_topic("plant/boiler-3/temperature"),
            Some((None, "boiler-3"))
        );
        assert_eq!(t.match_topic("plant/boiler-3/pressure"), None);
        assert_eq!(t.match_topic("plant/boiler-3/temperature/x"), None);
        let t = TopicTemplate::parse("site/+/{key}/{stream}/#").unwrap();
        assert_eq!(t.filter(), "site/+/+/+/#");
        assert_eq!(
            t.match_topic("site/a/k1/rpm/x/y"),
            Some((Some("rpm"), "k1"))
        );
        assert_eq!(
            TopicTemplate::parse("dav2d/{stream}/{key}")
                .unwrap()
                .topic_for("avg", "k"),
            "dav2d/avg/k"
        );
        assert!(
            TopicTemplate::parse("a/#/b")
                .unwrap_err()
                .contains("last level")
        );
        assert!(
            TopicTemplate::parse("a/x{key}")
                .unwrap_err()
                .contains("mixes")
        );
        assert!(
            TopicTemplate::parse("{key}/{key}")
                .unwrap_err()
                .contains("once")
        );
    }
}
