"""The billing engine: customers, products, checkout, subscriptions, invoices, payments, refunds, test clocks."""
