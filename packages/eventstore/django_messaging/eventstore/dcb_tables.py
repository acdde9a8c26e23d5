"""Names and sizes of the DCB tables, importable before Django's apps are loaded."""

DCB_EVENTS_TABLE = "messaging_eventstore_dcb_event"
DCB_TAGS_TABLE = "messaging_eventstore_dcb_tag"
DCB_SEQUENCE_TABLE = "messaging_eventstore_dcb_sequence"

#: Longest event type (a topic such as ``shop.decisions:OrderPlaced``) and longest tag.
DCB_TYPE_LENGTH = 255
DCB_TAG_LENGTH = 255
