//! OpenAPI schemas (feature `openapi`) for the ids whose serde is written by hand:
//! on the wire each is a string of a known shape. The server's API document uses them;
//! the other types derive `utoipa::ToSchema` where they are declared.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::external::{
    ClickUpListId, ClickUpTaskId, ClickUpUserId, SlackChannelId, SlackTs, SlackUserId,
};

/// `external::PLAIN_RULE` as a pattern.
const PLAIN: (&str, usize) = ("^[A-Za-z0-9_.-]{1,64}$", 64);
/// `external::TS_RULE` as a pattern.
const TS: (&str, usize) = ("^[0-9]+\\.[0-9]+$", 32);

macro_rules! string_schema {
    ($name:ident, $shape:expr, $description:literal) => {
        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let (pattern, max) = $shape;
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(pattern))
                    .max_length(Some(max))
                    .description(Some($description))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

string_schema!(SlackChannelId, PLAIN, "A Slack channel id (`C…`, `G…`).");
string_schema!(SlackUserId, PLAIN, "A Slack user id (`U…`, `W…`).");
string_schema!(
    SlackTs,
    TS,
    "A Slack message `ts`, like `1700000000.000100`."
);
string_schema!(ClickUpListId, PLAIN, "A ClickUp list id.");
string_schema!(
    ClickUpTaskId,
    PLAIN,
    "A ClickUp task id, or a custom id such as `DEV-42`."
);
string_schema!(
    ClickUpUserId,
    PLAIN,
    "A ClickUp user id (a number, kept as text)."
);
