"""Names and sizes of the event store's tables, importable before Django's apps are loaded."""

EVENTS_TABLE = "messaging_eventstore_stored_event"
AGGREGATE_TABLE = "messaging_eventstore_aggregate_record"
TRACKING_TABLE = "messaging_eventstore_tracking"
SEQUENCE_TABLE = "messaging_eventstore_sequence"

#: Longest application name the tables accept.
APPLICATION_NAME_LENGTH = 150
#: Longest originator id (``ORIGINATOR_ID_TYPE=text``); UUIDs are stored as 36 characters.
ORIGINATOR_ID_LENGTH = 255
