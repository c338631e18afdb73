"""Country (ISO 3166 alpha-2) to sales region, for the `region` dimension."""

from __future__ import annotations

OTHER = "Other"

_REGIONS = {
    "North America": "US CA MX",
    "Latin America": "AR BO BR CL CO CR CU DO EC GT HN JM NI PA PE PR PY SV TT UY VE",
    "Europe": "AD AL AT BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GI GR HR HU IE IS IT LI LT "
    "LU LV MC MD ME MK MT NL NO PL PT RO RS SE SI SK SM UA VA XK",
    "Middle East & Africa": "AE BH DZ EG ET GH IL IQ IR JO KE KW LB MA NG OM PS QA RW SA SN SY "
    "TN TR TZ UG YE ZA ZM ZW",
    "Asia Pacific": "AU BD BN CN FJ HK ID IN JP KH KR LA LK MM MN MO MY NP NZ PG PH PK SG TH TW VN",
}

COUNTRY_REGION = {
    country: region for region, countries in _REGIONS.items() for country in countries.split()
}
REGIONS = (*_REGIONS, OTHER)
