// Okabe & Ito's colour-blind-safe palette; every colour is also told apart by a pattern
// (ECharts' aria decals) and named in the legend and the data table.
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000']

export const KIND_COLOURS: Record<string, string> = {
  new: '#009E73',
  expansion: '#56B4E9',
  reactivation: '#CC79A7',
  contraction: '#E69F00',
  churn: '#D55E00',
  fx_adjustment: '#999999',
  opening: '#0072B2',
  closing: '#0072B2',
}

export const KIND_LABELS: Record<string, string> = {
  new: 'New',
  expansion: 'Expansion',
  reactivation: 'Reactivation',
  contraction: 'Contraction',
  churn: 'Churn',
  fx_adjustment: 'FX',
  opening: 'Opening MRR',
  closing: 'Closing MRR',
}
