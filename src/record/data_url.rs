//! Images given as `data:` URLs (RFC 2397), as OpenAI requests carry them: recognised in any
//! case (`DATA:image/PNG;BASE64,…`), checked to be base64 of an image format the models take.

/// If `text` is a data URL of an image (`data:image/…`, in any case), its format (`png`, `jpeg`,
/// `gif`, `webp`) and base64 payload, or why it is not one the models take; `None` for any
/// other text.
pub(crate) fn image(text: &str) -> Option<Result<(&'static str, &str), String>> {
    text.get(..11)
        .filter(|head| head.eq_ignore_ascii_case("data:image/"))
        .map(|_| parse_image(&text[5..]))
}

fn parse_image(url: &str) -> Result<(&'static str, &str), String> {
    let (head, payload) = url.split_once(',').ok_or("a data URL without a comma")?;
    let mime = head
        .len()
        .checked_sub(";base64".len())
        .filter(|&at| head.is_char_boundary(at) && head[at..].eq_ignore_ascii_case(";base64"))
        .map(|at| &head[..at])
        .ok_or("a data URL that is not base64 (data:image/png;base64,…)")?;
    let format = match mime.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => {
            return Err(format!(
                "a data URL of {mime:?}; images are png, jpeg, gif or webp"
            ))
        }
    };
    if !is_base64(payload) {
        return Err("a data URL whose payload is not base64".to_owned());
    }
    Ok((format, payload))
}

/// Whether `text` is standard base64 of at least one byte: its alphabet, a length no encoding
/// has (1 more than a multiple of 4) refused, and `=` padding only at the end, to a multiple of 4.
pub(crate) fn is_base64(text: &str) -> bool {
    let data = text.trim_end_matches('=');
    let padding = text.len() - data.len();
    !data.is_empty()
        && data
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        && data.len() % 4 != 1
        && padding <= 2
        && (padding == 0 || text.len().is_multiple_of(4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_checked_by_its_length_and_padding_too() {
        for ok in [
            "QQ==",
            "QUI=",
            "QUJD",
            "QUJDRA==",
            "iVBORw0KGgo=",
            "QQ",
            "QUI",
        ] {
            assert!(is_base64(ok), "{ok}");
        }
        for bad in [
            "", "==", "A", "AB=", "QQ=", "QQ===", "Q=Q=", "QU JD", "QUJD-_",
        ] {
            assert!(!is_base64(bad), "{bad}");
        }
    }

    #[test]
    fn image_data_urls_in_any_case_and_nothing_else() {
        assert_eq!(
            image("DATA:image/PNG;BASE64,QUJD"),
            Some(Ok(("png", "QUJD")))
        );
        assert_eq!(
            image("data:image/jpg;base64,QQ=="),
            Some(Ok(("jpeg", "QQ==")))
        );
        assert_eq!(image("data: the quick brown fox"), None);
        assert_eq!(image("data:text/plain;base64,QUJD"), None);
        assert_eq!(image("dätä:image/png"), None);
        assert!(image("data:image/svg+xml;base64,QUJD").unwrap().is_err());
        assert!(image("data:image/png,raw").unwrap().is_err());
        assert!(image("data:image/png;base64,==").unwrap().is_err());
    }
}
