SELECT coalesce(CAST(customer.country AS TEXT), %(coalesce_1)s::VARCHAR) AS g0, CAST(date_trunc(%(date_trunc_1)s::VARCHAR, CAST(usage_rollup.day AS TIMESTAMP WITHOUT TIME ZONE)) AS DATE) AS k, round(sum(usage_rollup.sum), %(round_1)s::INTEGER) / CAST(nullif(sum(usage_rollup.count), %(nullif_1)s::INTEGER) AS NUMERIC) AS value 
FROM usage_rollup JOIN customer ON customer.id = usage_rollup.customer_id 
WHERE usage_rollup.metric_id = %(metric_id_1)s::BIGINT AND usage_rollup.day >= %(window_start)s::DATE AND usage_rollup.day < %(window_end)s::DATE GROUP BY g0, k ORDER BY g0, k
