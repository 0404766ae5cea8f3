"""Deals from replies and meetings: gating, the deals_shadow record, CRM deal writes."""
