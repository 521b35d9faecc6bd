import { describe, expect, it } from 'vitest';
import { landingPage, pagesFor, roleFromProbes } from './roles';

describe('roles', () => {
  it('reads the role from what the server allowed', () => {
    expect(roleFromProbes({ pendingReview: true, complaints: true, standards: true })).toBe('operator');
    expect(roleFromProbes({ pendingReview: true, complaints: true, standards: false })).toBe('reviewer');
    expect(roleFromProbes({ pendingReview: false, complaints: true, standards: false })).toBe('county');
    expect(roleFromProbes({ pendingReview: false, complaints: false, standards: false })).toBe('station');
  });

  it('lands a station on a page it may use and hides the rest', () => {
    expect(pagesFor('station')).toEqual(['post', 'directory']);
    expect(landingPage('station', 'review')).toBe('post');
    expect(landingPage('station', 'directory')).toBe('directory');
  });

  it('keeps review for reviewers and operators only', () => {
    expect(pagesFor('county')).not.toContain('review');
    expect(landingPage('county', 'review')).toBe('complaints');
    expect(landingPage('reviewer', 'review')).toBe('review');
    expect(pagesFor('reviewer')).not.toContain('post');
    expect(pagesFor('operator')).toHaveLength(7);
  });
});
