"""The transaction coordinator (KIP-98) as a sans-IO state machine over one
`__transaction_state` partition."""
