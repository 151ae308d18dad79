//! Attachments that are files on this machine (an absolute path or a
//! `file://` URL), uploaded to the platform rather than linked:
//!
//! | platform | how | limit |
//! |---|---|---|
//! | Telegram | `sendDocument` / `sendPhoto` / ... as `multipart/form-data` (<https://core.telegram.org/bots/api#sending-files>) | 50 MB, photos 10 MB |
//! | Discord | `multipart/form-data` with `payload_json` and `files[0]`, the message's `attachments` naming it (<https://discord.com/developers/docs/reference#uploading-files>) | 10 MiB (unboosted) |
//! | WhatsApp | `POST /{phone-number-id}/media` (multipart: `messaging_product`, `type`, `file`), then the message by media `id` (<https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media>) | images 5 MB, audio and video 16 MB, documents 100 MB |
//! | Slack | `files.getUploadURLExternal` (`filename`, `length`), the bytes to the returned `upload_url`, then `files.completeUploadExternal` with `channel_id` (<https://api.slack.com/methods/files.getUploadURLExternal>) | 1 GB |
//! | Matrix | `POST /_matrix/media/v3/upload` (<https://spec.matrix.org/latest/client-server-api/#post_matrixmediav3upload>), then an `m.file` / `m.image` ... event with the `mxc://` URI | 50 MiB (Synapse's default `max_upload_size`) |
//!
//! Only files beneath `[gateway] upload_dirs` are read (symlinks resolved
//! first), so a reply can never carry out a file the owner did not put
//! there; none are by default. A file over the platform's limit is refused
//! with an error naming the file, its size and the limit. The steps before
//! the final call post nothing to the chat, so the part's one idempotency key
//! still covers the send: a crash mid-way leaves the part in doubt and it is
//! not sent again (Matrix resends with the same txnId, which the homeserver
//! drops).

use std::path::{Path, PathBuf};
use std::time::Duration;

use opticlaw_core::Attachment;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::platforms::Media;
use crate::sender::{CallResult, SendError, classify};
use crate::{OutboundMessage, Platform};

const MB: u64 = 1_000_000;
const MIB: u64 = 1 << 20;

/// A local file to upload with one outbound part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileUpload {
    pub path: PathBuf,
    pub file_name: String,
    pub mime_type: String,
    /// The multipart field the file goes in (Telegram `document`, `photo`...).
    pub field: String,
    /// The platform's size limit for this kind of file, in bytes.
    pub limit: u64,
}

impl FileUpload {
    /// An upload of `attachment` if it names a local file.
    pub fn of(attachment: &Attachment, field: &str, limit: u64) -> Option<Self> {
        let path = local_path(&attachment.reference)?;
        let file_name = attachment
            .name
            .clone()
            .or_else(|| Some(path.file_name()?.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "file".to_owned());
        Some(Self {
            mime_type: attachment
                .mime_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".to_owned()),
            path,
            file_name,
            field: field.to_owned(),
            limit,
        })
    }
}

/// The path of an attachment that is a file on this machine.
pub fn local_path(reference: &str) -> Option<PathBuf> {
    let path = Path::new(reference.strip_prefix("file://").unwrap_or(reference));
    path.is_absolute().then(|| path.to_path_buf())
}

/// The platform's upload limit for a kind of file, in bytes.
pub(crate) fn limit(platform: Platform, media: Media) -> u64 {
    match (platform, media) {
        (Platform::Telegram, Media::Image) => 10 * MB,
        (Platform::Telegram, _) => 50 * MB,
        (Platform::Discord, _) => 10 * MIB,
        (Platform::WhatsApp, Media::Image) => 5 * MB,
        (Platform::WhatsApp, Media::Audio | Media::Video) => 16 * MB,
        (Platform::WhatsApp, Media::File) => 100 * MB,
        (Platform::Slack, _) => 1000 * MB,
        (Platform::Matrix, _) => 50 * MIB,
    }
}

/// Why a local file cannot be uploaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UploadError {
    #[error(
        "{path}: local file uploads are only from [gateway] upload_dirs, and this file is not beneath any of them"
    )]
    NotAllowed { path: String },
    #[error("{path}: {size} bytes is over {platform}'s upload limit of {limit} bytes")]
    TooLarge {
        platform: Platform,
        path: String,
        size: u64,
        limit: u64,
    },
    #[error("{path}: cannot read the file: {detail}")]
    Unreadable { path: String, detail: String },
}

/// The file, checked: beneath an upload directory once symlinks are
/// resolved, a regular file, within the limit. Returns its real path and size.
pub fn check(
    platform: Platform,
    upload: &FileUpload,
    upload_dirs: &[PathBuf],
) -> Result<(PathBuf, u64), UploadError> {
    let shown = upload.path.display().to_string();
    let unreadable = |e: std::io::Error| UploadError::Unreadable {
        path: shown.clone(),
        detail: e.to_string(),
    };
    let real = upload.path.canonicalize().map_err(unreadable)?;
    let allowed = upload_dirs
        .iter()
        .filter_map(|dir| dir.canonicalize().ok())
        .any(|dir| real.starts_with(dir));
    if !allowed {
        return Err(UploadError::NotAllowed { path: shown });
    }
    let meta = std::fs::metadata(&real).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(UploadError::Unreadable {
            path: shown,
            detail: "not a regular file".into(),
        });
    }
    if meta.len() > upload.limit {
        return Err(UploadError::TooLarge {
            platform,
            path: shown,
            size: meta.len(),
            limit: upload.limit,
        });
    }
    Ok((real, meta.len()))
}

/// One HTTP exchange's answer, read the way [`classify`] wants it.
struct Answer {
    status: u16,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Answer {
    fn ok(&self, platform: Platform) -> bool {
        (200..300).contains(&self.status)
            && (platform != Platform::Slack || self.body["ok"] == Value::Bool(true))
    }
}

/// The uploading side of [`crate::Sender`]: the steps for one part with a
/// local file, ending in the platform's answer to the final call.
pub(crate) struct Uploader<'a> {
    pub client: &'a reqwest::Client,
    pub message: &'a OutboundMessage,
    pub upload: &'a FileUpload,
    /// The final call's URL and `Authorization` header.
    pub url: String,
    pub auth: Option<String>,
}

impl Uploader<'_> {
    pub async fn call(&self, upload_dirs: &[PathBuf]) -> Result<CallResult, SendError> {
        let platform = self.message.platform;
        let (real, size) =
            check(platform, self.upload, upload_dirs).map_err(|err| SendError::Upload {
                platform,
                part: self.message.part,
                detail: err.to_string(),
            })?;
        let mut body = self.message.body.clone();
        let answer = match platform {
            Platform::Telegram => {
                let mut form = reqwest::multipart::Form::new();
                if let Value::Object(fields) = &body {
                    for (key, value) in fields {
                        let text = match value {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        form = form.text(key.clone(), text);
                    }
                }
                let form = form.part(
                    self.upload.field.clone(),
                    self.file_part(&real, size).await?,
                );
                self.send(self.request(&self.url).multipart(form), true)
                    .await?
            }
            Platform::Discord => {
                let form = reqwest::multipart::Form::new()
                    .text("payload_json", body.to_string())
                    .part(
                        self.upload.field.clone(),
                        self.file_part(&real, size).await?,
                    );
                self.send(self.request(&self.url).multipart(form), true)
                    .await?
            }
            Platform::WhatsApp => {
                let media_url = replace_tail(&self.url, "messages", "media");
                let form = reqwest::multipart::Form::new()
                    .text("messaging_product", "whatsapp")
                    .text("type", self.upload.mime_type.clone())
                    .part("file", self.file_part(&real, size).await?);
                let uploaded = self
                    .send(self.request(&media_url).multipart(form), false)
                    .await?;
                let Some(id) = uploaded.body["id"]
                    .as_str()
                    .filter(|_| uploaded.ok(platform))
                else {
                    return Ok(self.refused(&uploaded));
                };
                let kind = body["type"].as_str().unwrap_or("document").to_owned();
                body[kind]["id"] = json!(id);
                self.send(self.request(&self.url).json(&body), true).await?
            }
            Platform::Matrix => {
                let base = self.url.split("/_matrix/client/").next().unwrap_or("");
                let file = tokio::fs::File::open(&real)
                    .await
                    .map_err(|e| self.unreadable(e))?;
                let request = self
                    .request(&format!("{base}/_matrix/media/v3/upload"))
                    .query(&[("filename", &self.upload.file_name)])
                    .header(reqwest::header::CONTENT_TYPE, &self.upload.mime_type)
                    .header(reqwest::header::CONTENT_LENGTH, size)
                    .body(reqwest::Body::from(file));
                let uploaded = self.send(request, false).await?;
                let Some(uri) = uploaded.body["content_uri"]
                    .as_str()
                    .filter(|_| uploaded.ok(platform))
                else {
                    return Ok(self.refused(&uploaded));
                };
                body["url"] = json!(uri);
                let put = self
                    .client
                    .put(&self.url)
                    .timeout(Duration::from_secs(60))
                    .json(&body);
                let put = match &self.auth {
                    Some(auth) => put.header(reqwest::header::AUTHORIZATION, auth),
                    None => put,
                };
                self.send(put, true).await?
            }
            Platform::Slack => {
                let get_url = replace_tail(
                    &self.url,
                    "files.completeUploadExternal",
                    "files.getUploadURLExternal",
                );
                // This method takes form-encoded arguments.
                let length = size.to_string();
                let args = [
                    ("filename", self.upload.file_name.as_str()),
                    ("length", length.as_str()),
                ];
                let granted = self.send(self.request(&get_url).form(&args), false).await?;
                let (Some(upload_url), Some(file_id)) = (
                    granted.body["upload_url"].as_str(),
                    granted.body["file_id"].as_str(),
                ) else {
                    return Ok(self.refused(&granted));
                };
                if !granted.ok(platform) {
                    return Ok(self.refused(&granted));
                }
                // The upload URL carries its own authority: no token.
                let form = reqwest::multipart::Form::new()
                    .part("file", self.file_part(&real, size).await?);
                let stored = self
                    .send(
                        self.client
                            .post(upload_url)
                            .timeout(Duration::from_secs(300))
                            .multipart(form),
                        false,
                    )
                    .await?;
                if !(200..300).contains(&stored.status) {
                    return Ok(self.refused(&stored));
                }
                body["files"] = json!([{"id": file_id, "title": self.upload.file_name}]);
                self.send(self.request(&self.url).json(&body), true).await?
            }
        };
        Ok(classify(
            platform,
            answer.status,
            &answer.headers,
            &answer.body,
        ))
    }

    /// A POST with the part's credentials.
    fn request(&self, url: &str) -> reqwest::RequestBuilder {
        let request = self.client.post(url).timeout(Duration::from_secs(300));
        match &self.auth {
            Some(auth) => request.header(reqwest::header::AUTHORIZATION, auth),
            None => request,
        }
    }

    async fn file_part(
        &self,
        real: &Path,
        size: u64,
    ) -> Result<reqwest::multipart::Part, SendError> {
        let file = tokio::fs::File::open(real)
            .await
            .map_err(|e| self.unreadable(e))?;
        reqwest::multipart::Part::stream_with_length(reqwest::Body::from(file), size)
            .file_name(self.upload.file_name.clone())
            .mime_str(&self.upload.mime_type)
            .map_err(|e| SendError::Upload {
                platform: self.message.platform,
                part: self.message.part,
                detail: format!("mime type {}: {e}", self.upload.mime_type),
            })
    }

    fn unreadable(&self, err: std::io::Error) -> SendError {
        SendError::Upload {
            platform: self.message.platform,
            part: self.message.part,
            detail: format!("{}: {err}", self.upload.path.display()),
        }
    }

    /// A step before the final call failed: the platform's refusal (or
    /// rate limit), read as it documents it.
    fn refused(&self, answer: &Answer) -> CallResult {
        match classify(
            self.message.platform,
            answer.status,
            &answer.headers,
            &answer.body,
        ) {
            CallResult::Delivered(_) => CallResult::Rejected {
                status: answer.status,
                code: "upload_failed".into(),
                detail: format!("unexpected upload answer: {}", answer.body),
            },
            other => other,
        }
    }

    /// Sends one step. Only the final step can have posted to the chat, so
    /// only its transport errors leave the part in doubt.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        final_step: bool,
    ) -> Result<Answer, SendError> {
        let transport = |err: reqwest::Error, in_doubt: bool| SendError::Transport {
            platform: self.message.platform,
            part: self.message.part,
            in_doubt,
            // without the URL: Telegram's carries the bot token
            detail: err.without_url().to_string(),
        };
        let response = request.send().await.map_err(|e| {
            let in_doubt = final_step && !e.is_connect() && !e.is_builder();
            transport(e, in_doubt)
        })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport(e, final_step))?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

fn replace_tail(url: &str, tail: &str, with: &str) -> String {
    match url.strip_suffix(tail) {
        Some(head) => format!("{head}{with}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_are_absolute_paths_or_file_urls() {
        assert_eq!(local_path("/tmp/a.pdf"), Some(PathBuf::from("/tmp/a.pdf")));
        assert_eq!(
            local_path("file:///tmp/a.pdf"),
            Some(PathBuf::from("/tmp/a.pdf"))
        );
        assert_eq!(local_path("https://x/a.pdf"), None);
        assert_eq!(local_path("relative/a.pdf"), None);
        assert_eq!(local_path("AgADBAAD"), None, "a platform file id");
    }

    #[test]
    fn files_outside_the_upload_dirs_or_over_the_limit_are_refused() {
        let allowed = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        std::fs::write(allowed.path().join("ok.txt"), b"12345").unwrap();
        std::fs::write(other.path().join("secret.txt"), b"x").unwrap();
        // A symlink inside the upload dir pointing out of it.
        std::os::unix::fs::symlink(
            other.path().join("secret.txt"),
            allowed.path().join("link.txt"),
        )
        .unwrap();
        let dirs = vec![allowed.path().to_path_buf()];
        let upload = |path: PathBuf, limit| FileUpload {
            path,
            file_name: "f".into(),
            mime_type: "text/plain".into(),
            field: "document".into(),
            limit,
        };
        let ok = check(
            Platform::Telegram,
            &upload(allowed.path().join("ok.txt"), 5),
            &dirs,
        );
        assert_eq!(ok.unwrap().1, 5);
        let big = check(
            Platform::Telegram,
            &upload(allowed.path().join("ok.txt"), 4),
            &dirs,
        );
        assert!(
            matches!(
                &big,
                Err(UploadError::TooLarge {
                    size: 5,
                    limit: 4,
                    ..
                })
            ),
            "{big:?}"
        );
        assert!(
            big.unwrap_err()
                .to_string()
                .contains("telegram's upload limit of 4 bytes")
        );
        for path in [
            other.path().join("secret.txt"),
            allowed.path().join("link.txt"),
        ] {
            assert!(matches!(
                check(Platform::Telegram, &upload(path, 100), &dirs),
                Err(UploadError::NotAllowed { .. })
            ));
        }
        assert!(matches!(
            check(
                Platform::Telegram,
                &upload(allowed.path().join("ok.txt"), 100),
                &[]
            ),
            Err(UploadError::NotAllowed { .. })
        ));
    }
}
