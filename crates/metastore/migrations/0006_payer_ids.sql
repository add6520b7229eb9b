-- The payment account a mini-program user pays with (their WeChat openid under the chain's app,
-- keyed-hashed with the payment method): a till payment by the same account links the payer's
-- orders and member card to the user (identity rule `payer_id`).
ALTER TABLE identity_nodes ADD COLUMN payer_hash VARCHAR(64)
