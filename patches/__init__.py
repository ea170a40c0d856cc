"""Changes to Faust and aiokafka internals, each pinned to the upstream code it replaces."""
