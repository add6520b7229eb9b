-- A customer's live orders (the profile's "since the snapshot" part, read per request) by index
-- instead of a scan of every order received since the snapshot.
CREATE INDEX live_orders_customer_day ON live_orders (customer_id, day);
