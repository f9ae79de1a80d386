"""Customer lifetime value: a Python model on Polars. Inputs arrive by parameter name."""

import polars as pl


def customer_value(customer_orders: pl.LazyFrame) -> pl.LazyFrame:
    value = pl.col("revenue").fill_null(0)
    return customer_orders.select(
        "customer_id",
        "full_name",
        value.alias("lifetime_value"),
        (value / pl.col("orders")).round(2).alias("avg_order_value"),
        pl.when(value >= 1500).then(pl.lit("vip"))
        .when(value >= 500).then(pl.lit("regular"))
        .otherwise(pl.lit("occasional"))
        .alias("segment"),
    )
