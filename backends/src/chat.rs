//! Chat prompts: messages rendered with the model's own Jinja chat template (as Hugging Face
//! `apply_chat_template` does), via minijinja.

use minijinja::{Environment, ErrorKind};
use serde::{Deserialize, Serialize};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
    /// Where the template came from (`gguf-metadata`, a tokenizer_config.json path).
    pub source: String,
}

impl ChatTemplate {
    /// Compile `template`; `bos`/`eos` are the model's special-token strings.
    pub fn new(template: &str, bos: &str, eos: &str, source: &str) -> Result<Self, String> {
        let mut env = Environment::new();
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_template_owned("chat", template.to_string())
            .map_err(|e| format!("chat template from {source} does not compile: {e}"))?;
        Ok(Self {
            env,
            bos: bos.to_string(),
            eos: eos.to_string(),
            source: source.to_string(),
        })
    }

    /// Render `messages` with a generation prompt for the assistant's turn.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, String> {
        let t = self.env.get_template("chat").map_err(|e| e.to_string())?;
        t.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => &self.bos,
            eos_token => &self.eos,
        })
        .map_err(|e| format!("chat template from {}: {e}", self.source))
    }
}

/// What a model without a chat template sees: the message contents, one paragraph each.
pub fn plain_join(messages: &[ChatMessage]) -> String {
    messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_chatml_template() {
        let tpl = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
        let t = ChatTemplate::new(tpl, "<s>", "</s>", "test").unwrap();
        let out = t
            .render(&[ChatMessage {
                role: "user".into(),
                content: "Hi".into(),
            }])
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert!(ChatTemplate::new("{% if %}", "", "", "bad").is_err());
        let raising =
            ChatTemplate::new("{{ raise_exception('no system role') }}", "", "", "x").unwrap();
        assert!(raising.render(&[]).unwrap_err().contains("no system role"));
    }
}
