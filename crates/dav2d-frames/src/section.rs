//! The `sources:` entries of kind `frames`: read from YAML, checked where
//! they are written (the frame URL), and resolved into [`FrameSource`].

use dav2d_component::Source;
use dav2d_component::section::{
    ComponentSpec, ConfigError, Declared, SectionContext, SourceSection, SourceSetting, Spanned,
    component,
};
use serde::Deserialize;

use crate::{FrameSource, FrameUrl};

/// A frame source (`kind: frames`).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct FramesSection {
    /// The component's name.
    pub name: Option<String>,
    /// The frame URL: `synthetic:WxH@RATE?format=...`, `y4m:PATH`, `tcp://ADDR`, `x11::N`.
    pub url: Spanned<String>,
    /// The stream its frames go to (declared `type: frame` if it is not declared).
    pub stream: Spanned<String>,
    /// The token a `tcp://` producer's first line `AUTH <token>` must carry
    /// (default: `http.token`).
    pub token: Option<Spanned<String>>,
}

impl SourceSetting for FrameSource {
    fn build(&self, name: &str, _setting: &str) -> Box<dyn Source> {
        Box::new(FrameSource {
            name: name.to_string(),
            ..self.clone()
        })
    }

    fn describe(&self, name: &str) -> ComponentSpec {
        ComponentSpec {
            // A `tcp://` frame source is a door: whether it needs the token.
            token: self.url.starts_with("tcp:").then_some(self.token.is_some()),
            ..component(name, "frames", self.url.clone(), vec![self.stream.clone()])
        }
    }
}

impl SourceSection for FramesSection {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn resolve(
        &self,
        context: &SectionContext,
        at: &str,
        _kind: &Spanned<String>,
        name: &str,
    ) -> Result<Box<dyn SourceSetting>, ConfigError> {
        let url = self.url.value.trim();
        FrameUrl::parse(url)
            .map_err(|message| context.error_at(&self.url, format!("{at}.url"), message))?;
        Ok(Box::new(FrameSource {
            name: name.to_string(),
            url: url.to_string(),
            stream: self.stream.value.clone(),
            token: context.token_or_default(&self.token, &format!("{at}.token"))?,
        }))
    }

    fn declares(&self, at: &str) -> Vec<Declared<'_>> {
        vec![Declared::stream(&self.stream, at, true)]
    }
}
