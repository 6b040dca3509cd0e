//! An error printed with its causes, each once: every error of cnm's says
//! only what it adds (`create br0`), keeps its cause as `source()`, and is
//! printed whole where it leaves cnm (an API answer, a plugin's reply, a
//! log line, the CLI) by [`Chain`]: `create br0: Operation not permitted`.

use std::error::Error;
use std::fmt;

/// Displays an error and each of its sources, joined by `": "`.
pub struct Chain<'a, E: ?Sized>(pub &'a E);

impl<E: Error + ?Sized> fmt::Display for Chain<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            let text = e.to_string();
            // A wrapper with nothing of its own to say adds no ": ".
            if !text.is_empty() {
                write!(f, ": {text}")?;
            }
            cause = e.source();
        }
        Ok(())
    }
}

impl<E: Error + ?Sized> fmt::Debug for Chain<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The whole text of `e`: its message and its causes' ([`Chain`]).
pub fn chain<E: Error + ?Sized>(e: &E) -> String {
    Chain(e).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|l| l as &(dyn Error + 'static))
        }
    }

    #[test]
    fn each_cause_is_printed_once_in_order() {
        let e = Layer("create network", Some(Box::new(Layer("create br0", Some(Box::new(Layer("EPERM", None)))))));
        assert_eq!(chain(&e), "create network: create br0: EPERM");
        assert_eq!(chain(&Layer("alone", None)), "alone");
    }
}
